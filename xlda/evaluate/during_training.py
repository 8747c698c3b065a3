"""A benchmark suite during pretraining: ``pretrain_trillion.py --eval-suite FILE
--eval-suite-interval N`` scores the live weights every N iterations.

The suite runs through the same lm-eval backend as tools/evaluate.py, over a ``Scorer`` on the
training run's own Trainer (``Trainer.forward_only``: eval mode, no gradients, the run's TP/PP
layout, items sharded over DP and gathered back), so no checkpoint is written or reloaded. Its
scores join the run's evaluation metrics: they are printed, written to metrics.jsonl (``kind:
eval``) and to TensorBoard (``eval/suite_*``). ``tools/plot_run.py`` plots them against the
tokens trained per language.

The suite and its data are checked before training starts (``check``): a missing dataset fails
the launch, not iteration N. Always offline (a training job must not depend on the Hub).
"""
from __future__ import annotations

from typing import Optional

from xlda.training.lm_task import LMTask


def metric_label(metric: str) -> str:
    """``acc,none`` -> ``acc``; ``exact_match,strict-match`` -> ``exact_match_strict-match``."""
    name, _, filt = metric.partition(",")
    return name if filt in ("", "none") else f"{name}_{filt}"


def flatten(rep: dict) -> dict:
    """A suite report as named scalar metrics (the run's eval metrics)."""
    out = {f"suite {t['task']} {metric_label(t['metric'])}": t["score"] for t in rep["tasks"]}
    for lang, v in rep["languages"].items():
        out[f"suite {lang} macro"] = v["macro"]
    out["suite macro"], out["suite micro"] = rep["average"]["macro"], rep["average"]["micro"]
    for c in rep["consistency"]:
        out[f"consistency {c['pair'][0]}/{c['pair'][1]}"] = c["consistency"]
    return out


class SuiteEvaluation:
    """The suite of a training run: checked up front, then scored on the trainer's weights."""

    def __init__(self, suite: str, interval: int, limit: Optional[int] = None):
        self.suite_arg, self.interval, self.limit = suite, interval, limit
        self._suite = self._lm = None

    def check(self) -> None:
        """Load the suite and resolve its data (EvalError naming what is missing)."""
        from xlda.evaluate.suite import go_offline, open_suite

        go_offline()
        self._suite, self._tm, self._data_dir, _ = open_suite(self.suite_arg)

    def _backend(self, trainer):
        """The lm-eval model over this trainer (its weights change, the scorer stays)."""
        if self._lm is None:
            from xlda.data.tokenizer import build_tokenizer
            from xlda.evaluate.lm_backend import XldaMegatronLM
            from xlda.evaluate.scorer import Scorer
            from xlda.evaluate.session import Session

            cfg = trainer.cfg
            tok = build_tokenizer(cfg.data.tokenizer_type, cfg.data.tokenizer_model)
            scorer = Scorer(trainer, vocab_size=cfg.model.vocab_size, pad_id=tok.eod,
                            max_length=cfg.data.seq_length,
                            call_size=16 * cfg.training.micro_batch_size * trainer.dp_size)
            self._lm = XldaMegatronLM(session=Session(trainer, scorer, tok, None, cfg))
        return self._lm

    def __call__(self, trainer) -> dict:
        import lm_eval

        from xlda.evaluate.report import suite_report
        from xlda.evaluate.suite import build_tasks, resolve

        if self._suite is None:
            self.check()
        suite = self._suite
        # tasks are built afresh each time (lm-eval keeps per-run state in them)
        tasks = build_tasks(self._tm, resolve(suite, self._tm, self._data_dir), suite.task_names)
        results = lm_eval.simple_evaluate(model=self._backend(trainer), tasks=tasks,
                                          task_manager=self._tm, limit=self.limit,
                                          log_samples=True, bootstrap_iters=0)
        return flatten(suite_report(results, suite))


class LMSuiteTask(LMTask):
    """Pretraining with a benchmark suite: the held-out loss every --eval-interval, the suite
    every --eval-suite-interval (the trainer asks at either)."""

    def __init__(self, suite: SuiteEvaluation):
        super().__init__()
        self.suite = suite

    def evaluate(self, trainer) -> dict:
        it, t = trainer.iteration, trainer.cfg.training
        out = {}
        if t.eval_interval and it % t.eval_interval == 0:
            out.update(super().evaluate(trainer))
        if it % self.suite.interval == 0:
            out.update(self.suite(trainer))
        return out


def suite_task(cfg) -> Optional[LMSuiteTask]:
    """The task of a pretraining run with --eval-suite (checked now), or None without one."""
    t = cfg.training
    if not t.eval_suite:
        return None
    ev = SuiteEvaluation(t.eval_suite, t.eval_suite_interval, limit=t.eval_suite_limit)
    ev.check()
    return LMSuiteTask(ev)
