"""WSD learning-rate schedule (megatron-core's OptimizerParamScheduler) and the annealing data swap.

The scheduler counts iterations (one ``step(1)`` per optimizer step), so ``lr_*_iters`` flags
map one to one onto its ``*_steps`` arguments. The LR used by training iteration ``i`` (1-based)
is ``get_lr`` at ``num_steps = i - 1``; it leaves the stable plateau once ``num_steps`` passes
``decay_start = lr_decay_iters - lr_wsd_decay_iters``. The data swap happens at the same point:
the iteration trained after ``decay_start`` completed iterations reads the annealing blend.
"""
from __future__ import annotations

from dataclasses import dataclass


def build_scheduler(run_config, optimizer):
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

    s, o = run_config.scheduler, run_config.optimizer
    start_wd = o.weight_decay if s.start_weight_decay is None else s.start_weight_decay
    end_wd = o.weight_decay if s.end_weight_decay is None else s.end_weight_decay
    return OptimizerParamScheduler(
        optimizer,
        init_lr=s.lr_warmup_init,
        max_lr=o.lr,
        min_lr=o.min_lr,
        lr_warmup_steps=s.lr_warmup_iters,
        lr_decay_steps=run_config.decay_iters,
        lr_decay_style=s.lr_decay_style,
        start_wd=start_wd,
        end_wd=end_wd,
        wd_incr_steps=run_config.training.train_iters,
        wd_incr_style=s.weight_decay_incr_style,
        wsd_decay_steps=run_config.wsd_decay_iters() if s.lr_decay_style == "WSD" else None,
        lr_wsd_decay_style=s.lr_wsd_decay_style,
    )


@dataclass
class AnnealingSwitch:
    """Decides when the data iterator moves to the annealing blend; its state is checkpointed."""

    decay_start: int  # completed iterations after which annealing data is used
    enabled: bool = True
    switched: bool = False
    switched_at: int | None = None

    @classmethod
    def from_run_config(cls, run_config) -> "AnnealingSwitch":
        return cls(decay_start=run_config.decay_start, enabled=run_config.annealing_on)

    def should_switch(self, completed_iterations: int) -> bool:
        """True exactly once: at the first check with ``completed_iterations >= decay_start``."""
        if not self.enabled or self.switched or completed_iterations < self.decay_start:
            return False
        self.switched = True
        self.switched_at = completed_iterations
        return True

    def state_dict(self) -> dict:
        return {"decay_start": self.decay_start, "switched": self.switched,
                "switched_at": self.switched_at}

    def load_state_dict(self, state: dict) -> None:
        if state.get("decay_start") != self.decay_start:
            # A resumed run with a different schedule: keep the switch flag, trust the new start.
            pass
        self.switched = bool(state["switched"])
        self.switched_at = state.get("switched_at")


def annealing_probabilities(languages, probs, multiplier: float, primary_language: str) -> dict:
    """Main-phase P(l) with every non-primary language's share multiplied, renormalised.

    E.g. en 0.7 / ko 0.1 / ja 0.1 / zh 0.1 with x3 -> en 0.7/1.6, others 0.3/1.6 each.
    """
    if multiplier < 0:
        raise ValueError(f"annealing_multilingual_multiplier={multiplier} must be >= 0")
    w = {lang: p * (1.0 if lang == primary_language else multiplier)
         for lang, p in zip(languages, probs)}
    total = sum(w.values())
    if total <= 0:
        raise ValueError(f"annealing blend has zero mass: P(l)={dict(zip(languages, probs))}")
    return {lang: v / total for lang, v in w.items()}


def annealing_dataset_config(data_config, tokenizer, seed: int, main_train=None):
    """XLDADatasetConfig of the annealing blend: the annealing spec (default: the main one),
    its main-rule P(l) with the multilingual share multiplied, as explicit beta (alpha 0)."""
    from xlda.data.dataset import XLDACorpus
    from xlda.data.sampling import language_probabilities

    base = data_config.build(tokenizer, seed=seed, annealing=True)
    if main_train is not None and tuple(main_train.languages) == tuple(base.languages) and \
            data_config.annealing_paths is None and data_config.annealing_data_path is None:
        probs = list(main_train.probs)
    else:
        tokens = XLDACorpus.from_config(base).tokens
        probs = language_probabilities(base.languages, tokens, data_config.xlda_alpha,
                                       data_config.xlda_beta)
    beta = annealing_probabilities(base.languages, probs,
                                   data_config.annealing_multilingual_multiplier,
                                   data_config.primary_language)
    # A different seed: the annealing samples are not the main stream's first samples again.
    return data_config.build(tokenizer, seed=seed + 1, annealing=True, xlda_alpha=0.0,
                             xlda_beta=beta)
