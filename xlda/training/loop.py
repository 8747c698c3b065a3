"""The training loop on megatron-core pieces: parallel_state, GPTModel (xlda.model), DDP,
get_megatron_optimizer, the pipeline schedules and OptimizerParamScheduler (WSD).

``Trainer(run_config, task).train()`` is what pretrain_trillion.py (task: LMTask, the default)
and posttrain.py (SFTTask, DPOTask) run; tests call it in-process. What a run trains on and how
a step is scored is the task's (xlda.training.task); everything else is here.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Optional

import torch

from xlda.training.batches import TrainData, DataStream
from xlda.training.config import RunConfig
from xlda.training.metrics import FlopsModel, MetricsLogger
from xlda.training.task import TrainTask
from xlda.training.wsd import AnnealingSwitch, build_scheduler


class TrainingDivergedError(RuntimeError):
    """Loss or grad norm became NaN/inf; the message names the iteration and the last good
    checkpoint."""


@dataclass
class TrainResult:
    iteration: int
    exit_reason: str  # "finished" | "signal" | "exit_interval"
    history: list = field(default_factory=list)
    eval_history: list = field(default_factory=list)


def _require_modules(*names: str) -> None:
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"{name} cannot be imported ({exc}); the trainer needs it to save "
                              "checkpoints and handle SIGTERM/SIGUSR1. Reinstall xlda "
                              "(pip install -e .) or fix the import error") from exc


class Trainer:
    def __init__(self, run_config: RunConfig, task: Optional[TrainTask] = None, print_fn=print):
        if task is None:
            from xlda.training.lm_task import LMTask

            task = LMTask()
        self.cfg = run_config
        self.task = task
        self.print = print_fn
        self.resumed = False  # set-up restored a checkpoint's full state (not weights only)

    # -- set-up --------------------------------------------------------------------------------
    def setup(self):
        from megatron.core import parallel_state as ps
        from megatron.core.distributed import DistributedDataParallel, finalize_model_grads
        from megatron.core.utils import get_model_config

        from xlda.training import dist_env

        # Fail before any work if saving or SIGTERM handling could not run (a run without them
        # would lose its progress silently).
        _require_modules("xlda.training.checkpointing", "xlda.training.signals")
        cfg = self.cfg.validate()
        cpu = not torch.cuda.is_available()
        cfg.check_device(cuda=not cpu)  # the CLIs ran it before any import; a test may not
        self.denv = dist_env.initialize(cfg.parallel, cfg.training.seed)
        self.rank = self.denv.rank
        self.world = self.denv.world_size
        self.dp_rank = ps.get_data_parallel_rank()
        self.dp_size = ps.get_data_parallel_world_size()
        self.num_microbatches = cfg.training.num_microbatches(self.dp_size)
        self.device = torch.device("cpu") if cpu else torch.device("cuda", torch.cuda.current_device())
        if cfg.model.attention_backend == "te":
            from xlda.attention.te import check_te_backend

            # fails here, naming what to install, rather than training on TE's unfused attention
            backend = check_te_backend(cfg.model, cfg.training.micro_batch_size,
                                       cfg.parallel.tensor_model_parallel_size)
            self.log0(f"[xlda] TE attention backend for the XLDA THD call: {backend}")

        self._build_data()
        model = cfg.model.build()
        from xlda.model.fusions import fusion_summary

        self.log0(fusion_summary(cfg.model.fusions()))
        if not cpu:
            model.cuda(torch.cuda.current_device())
        tc = get_model_config(model)
        if cfg.model.bf16 or cfg.model.fp16:
            from megatron.core.transformer.module import Float16Module

            # As Megatron-LM: half-precision params, fp32 logits/loss out of the last stage.
            model = Float16Module(tc, model)
        if self.task.trains:
            ddp = DistributedDataParallel(config=tc, ddp_config=cfg.parallel.build(), module=model)
            self.model_chunks = [ddp]
            self.optimizer = cfg.optimizer.build(
                self.model_chunks, bf16=cfg.model.bf16,
                use_distributed_optimizer=cfg.parallel.use_distributed_optimizer)
            self.scheduler = build_scheduler(cfg, self.optimizer)
            tc.no_sync_func = ddp.no_sync
            tc.finalize_model_grads_func = finalize_model_grads
            tc.grad_scale_func = self.optimizer.scale_loss
        else:
            # A scoring task (xlda.evaluate): the weights only. No gradient buffers and no
            # optimizer state (fp32 main params, Adam moments: 4-5x the bf16 weights' memory).
            self.model_chunks = [model]
            self.optimizer = self.scheduler = None
        self.switch = AnnealingSwitch.from_run_config(cfg)
        self.model_config = tc
        tp = ps.get_tensor_model_parallel_world_size()
        self.flops_model = FlopsModel.from_model_config(cfg.model, cfg.model.padded_vocab_size(tp))
        run_dir = cfg.training.run_dir or cfg.checkpoint.save
        self.metrics = MetricsLogger(
            cfg.logging, self.flops_model, self.world, self.rank, print_fn=self.print,
            jsonl_path=str(Path(run_dir) / "metrics.jsonl") if run_dir else None,
            shown=self.task.log_formats)
        self.iteration = 0
        self._saved_iteration = None  # the iteration whose checkpoint is on disk
        self.lang_tokens_total = {}  # trained tokens per language since iteration 0 (resumed)
        self._load()
        self._write_run_files()
        self.task.ready(self)
        return self

    def log0(self, msg: str):
        if self.rank == 0:
            self.print(msg, flush=True) if self.print is print else self.print(msg)

    def _build_data(self):
        cfg = self.cfg
        d = self.task.build_data(cfg, self.log0)
        if d.vocab_size:
            cfg.model.vocab_size = d.vocab_size  # the task's tokenizer sizes the embedding
        self.languages = tuple(d.languages)
        self.collator = d.collator
        self.data = TrainData(d.train, d.annealing, micro_batch_size=cfg.training.micro_batch_size,
                              dp_rank=self.dp_rank, dp_size=self.dp_size, device=self.device,
                              num_workers=cfg.data.num_workers, collate_fn=d.collator)
        self.valid = d.valid

    # -- checkpoints ---------------------------------------------------------------------------
    def _ckpt_module(self):
        from xlda.training import checkpointing

        return checkpointing

    def _extra_state(self) -> dict:
        return {"consumed_samples": self.data.consumed_samples, "data": self.data.state_dict(),
                "annealing": self.switch.state_dict(),
                "lang_tokens_total": dict(self.lang_tokens_total),
                "task": self.task.state_dict()}

    def save(self):
        ck = self._ckpt_module()
        save_dir = self.cfg.checkpoint.save
        if not save_dir:
            return
        if self._saved_iteration == self.iteration:
            return  # already on disk (save interval, then a signal or the end at this iteration)
        ck.save_checkpoint(save_dir, self.iteration, self.model_chunks, self.optimizer,
                           self.scheduler, self._extra_state(), self.cfg)
        self._saved_iteration = self.iteration
        self.log0(f"[xlda] saved checkpoint iter {self.iteration} to {save_dir}")

    def _load(self):
        start = self.task.start(self.cfg)
        if start.note:
            self.log0(f"[xlda] {start.note}")
        load_dir = start.load
        if not load_dir:
            return
        ck = self._ckpt_module()
        finetune = start.weights_only
        if not finetune and ck.has_optimizer_state(load_dir) is False:
            # A converted checkpoint (model only): what --finetune does, said in one line.
            finetune = True
            self.log0(f"[xlda] {load_dir} holds no optimizer state (a converted checkpoint?): "
                      "loading weights only, starting at iteration 0 with a fresh optimizer")
        out = ck.load_checkpoint(load_dir, self.model_chunks, self.optimizer,
                                 None if finetune else self.scheduler,
                                 run_config=self.cfg, load_optimizer=not finetune,
                                 verify=self.cfg.checkpoint.verify_checkpoint)
        if out is None:
            self.log0(f"[xlda] no checkpoint in {load_dir}; starting from scratch")
            return
        self.iteration, extra = out
        if self.cfg.checkpoint.save and Path(self.cfg.checkpoint.save).resolve() == Path(
                load_dir).resolve():
            self._saved_iteration = self.iteration  # resuming in place: never re-save it
        if finetune:  # weights only: fresh iteration count, data position and schedule
            if start.weights_only:
                self.log0(f"[xlda] loaded weights from {load_dir} (its iteration "
                          f"{self.iteration}, weights only), starting at 0")
            self.iteration = 0
            return
        self.resumed = True
        self.data.load_state_dict(extra["data"])
        self.switch.load_state_dict(extra["annealing"])
        self.lang_tokens_total = {k: int(v) for k, v in extra.get("lang_tokens_total", {}).items()}
        self.task.load_state_dict(extra.get("task") or {})
        self.log0(f"[xlda] resumed from {load_dir} at iteration {self.iteration} "
                  f"(consumed samples {self.data.consumed_samples}, "
                  f"annealing {'on' if self.data.use_annealing else 'off'})")

    def last_checkpoint(self) -> str:
        from xlda.checkpoint_layout import describe_latest

        return describe_latest(self.cfg.checkpoint.save)

    def _write_run_files(self):
        """The resolved config to the run directory; the task's files beside the checkpoints."""
        if self.rank != 0:
            return
        run_dir = self.cfg.training.run_dir or self.cfg.checkpoint.save
        if run_dir:
            self.cfg.to_yaml(Path(run_dir) / "run_config.yaml")
        save = self.cfg.checkpoint.save
        files = self.task.run_files()
        if save and files:
            from xlda.files import atomic_write

            for name, text in files.items():
                atomic_write(Path(save) / name, text)

    # -- steps ---------------------------------------------------------------------------------
    def _forward_step(self, counters, loss_for, data_iterator, model, logits: bool = False):
        batch = next(data_iterator)
        # Statistics and the THD layout come from the CPU batch (loader workers): reading them
        # here never waits for the device.
        stats = batch.pop("stats")
        layout = batch.pop("thd_layout", None)
        if counters is not None:
            for k in ("pairs", "causal", "tokens"):
                counters[k] += stats[k]
            for i, n in enumerate(stats.get("lang_tokens", ())):
                counters["lang_tokens"][i] += n
            self._count_kv_rows(counters, stats["kv_rows"], stats["tokens"] // len(stats["kv_rows"]))
        mask = self.cfg.model.mask_params(batch["doc_ids"], batch["lang_ids"])
        if layout is not None:
            mask.cached("thd", lambda: layout)
        # without labels megatron-core's GPTModel returns the (TP-sharded) logits [B, S, V/tp]
        out = model(batch["tokens"], batch["position_ids"], mask,
                    labels=None if logits else batch["labels"], loss_mask=batch["loss_mask"])
        return out, loss_for(batch)

    def _task_loss(self, training: bool):
        """batch -> the loss function megatron-core calls with the last stage's output."""
        return lambda batch: partial(self.task.loss, batch, training=training)

    def _count_kv_rows(self, counters, kv_rows: list, S: int):
        """K/V rows the THD/TE executors gather, and the --xlda-max-kv-expansion cap."""
        import numpy as np

        from xlda.attention.stats import ExpansionCapExceeded

        rows = np.asarray(kv_rows, dtype=np.int64)
        counters["kv_rows"] += int(rows.sum())
        counters["kv_max"] = max(counters["kv_max"], int(rows.max()))
        cap = self.cfg.data.xlda_max_kv_expansion
        if cap is not None:
            over = rows / S > cap
            counters["kv_over_cap"] += int(over.sum())
            if over.any() and self.cfg.data.xlda_kv_cap_action == "raise":
                raise ExpansionCapExceeded(
                    f"iteration {self.iteration + 1}: a sample's XLDA K/V expansion is "
                    f"{rows.max() / S:.2f} > --xlda-max-kv-expansion {cap} (consumed samples "
                    f"{self.data.consumed_samples}); pack fewer, longer documents per sequence "
                    "(lower --xlda-rho), raise the cap, or use --xlda-kv-cap-action flag")

    def _run_schedule(self, data_iterator, forward_only: bool, loss_for, counters=None,
                      num_microbatches: Optional[int] = None, seq_length: Optional[int] = None,
                      logits: bool = False):
        from megatron.core.pipeline_parallel import get_forward_backward_func

        fb = get_forward_backward_func()
        t = self.cfg.training
        return fb(forward_step_func=partial(self._forward_step, counters, loss_for, logits=logits),
                  data_iterator=data_iterator, model=self.model_chunks,
                  num_microbatches=num_microbatches or self.num_microbatches,
                  seq_length=seq_length or self.cfg.data.seq_length,
                  micro_batch_size=t.micro_batch_size * self.task.rows_per_sample,
                  forward_only=forward_only)

    def _all_reduce(self, v: torch.Tensor) -> torch.Tensor:
        """Sum a float64 host vector over the whole world (gloo: on the host, nccl: on device)."""
        if self.world > 1:
            dev = self.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
            v = v.to(dev)
            torch.distributed.all_reduce(v)
            v = v.cpu()
        return v

    def _reduce(self, reports: list, names, extra: list) -> torch.Tensor:
        """The named (sum, count) reports of the last stage, summed over micro-batches, then
        with ``extra`` over the whole world: ``[sum_0, count_0, sum_1, ..., *extra]``."""
        n = 2 * len(names)
        v = torch.zeros(n + len(extra), dtype=torch.float64)
        if reports:  # one device -> host copy per step, not one per micro-batch
            zero = torch.zeros(2)
            rows = [torch.cat([r[k].view(-1).double() if k in r else zero.double()
                               for k in names]) for r in reports]
            v[:n] = torch.stack(rows).sum(0).cpu()
        v[n:] = torch.tensor(extra, dtype=torch.float64)
        return self._all_reduce(v)

    @staticmethod
    def _named(v: torch.Tensor, names) -> dict:
        """sum / count per name; the first (the loss) always, the others where counted."""
        out = {}
        for i, name in enumerate(names):
            s, c = float(v[2 * i]), float(v[2 * i + 1])
            if i == 0 or c > 0:
                out[name] = s / max(c, 1.0)
        return out

    def _mtp_losses(self):
        from megatron.core.transformer.multi_token_prediction import MTPLossLoggingHelper

        tracker = MTPLossLoggingHelper.tracker
        # megatron-core 0.19 renamed the per-depth loss sums "values" -> "loss_values" (it also
        # tracks acceptance counts) and clean_loss_in_tracker -> clean_metrics_in_tracker.
        key = "loss_values" if "loss_values" in tracker else "values"
        if key not in tracker:
            return []
        vals = (tracker[key].detach().double().cpu() / self.num_microbatches).tolist()
        clean = getattr(MTPLossLoggingHelper, "clean_metrics_in_tracker", None) or getattr(
            MTPLossLoggingHelper, "clean_loss_in_tracker"
        )
        clean()
        return vals

    def train_step(self) -> dict:
        for chunk in self.model_chunks:
            chunk.zero_grad_buffer()
        self.optimizer.zero_grad()
        counters = {"pairs": 0, "causal": 0, "tokens": 0, "kv_rows": 0, "kv_max": 0,
                    "kv_over_cap": 0, "lang_tokens": [0] * len(self.languages)}
        reports = self._run_schedule(self.data, False, self._task_loss(True), counters=counters)
        ok, grad_norm, _ = self.optimizer.step()
        if ok:
            self.scheduler.step(increment=1)
        mtp = self._mtp_losses()
        # Every TP/PP/CP rank read the same data as its DP rank: count each DP rank once.
        dup = self.world // self.dp_size
        n_mtp = len(mtp)
        names = self.task.metric_names(True)
        v = self._reduce(reports, names, [counters["pairs"] / dup, counters["causal"] / dup,
                                          counters["tokens"] / dup, counters["kv_rows"] / dup,
                                          counters["kv_over_cap"] / dup, 1.0 if mtp else 0.0]
                         + mtp + [c / dup for c in counters["lang_tokens"]])
        n = 2 * len(names)
        # the task's metrics, by name, beside the loop's counters (the loss is names[0])
        out = {**self._named(v, names), "pairs": int(v[n]),
               "causal": int(v[n + 1]), "tokens": int(v[n + 2]), "kv_rows": int(v[n + 3]),
               "kv_over_cap": int(v[n + 4]), "kv_max_row": counters["kv_max"],  # this rank's
               "skipped": not ok, "grad_norm": grad_norm}
        if n_mtp and v[n + 5] > 0:
            for i in range(n_mtp):
                out[f"mtp_{i + 1} loss"] = float(v[n + 6 + i] / v[n + 5])
        out["lang_tokens"] = {lang: int(v[n + 6 + n_mtp + i]) for i, lang in enumerate(self.languages)}
        return out

    @contextlib.contextmanager
    def _eval_mode(self):
        for c in self.model_chunks:
            c.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            for c in self.model_chunks:
                c.train()

    @contextlib.contextmanager
    def inference(self):
        """Eval mode, no autograd, and the main LM head only: megatron-core's GPTModel runs its
        multi-token-prediction block (a training-time auxiliary loss, which needs labels)
        whenever the model has one; scoring passes and decoding read the main head alone."""
        from xlda.training.checkpoint_mcore import unwrap

        models = [unwrap(c) for c in self.model_chunks]
        saved = [(m.mtp_process, m.config.mtp_num_layers) for m in models]
        try:
            for m in models:
                m.mtp_process, m.config.mtp_num_layers = False, None
            with self._eval_mode():
                yield
        finally:
            for m, (process, layers) in zip(models, saved):
                m.mtp_process, m.config.mtp_num_layers = process, layers

    def evaluate(self) -> dict:
        """The task's evaluation of the current weights (named metrics)."""
        return self.task.evaluate(self)

    def eval_metrics(self, dataset, iters: int) -> dict:
        """The task's loss and metrics (evaluation form) over ``iters`` global batches of
        ``dataset``, read from its start each call."""
        t = self.cfg.training
        stream = DataStream(dataset, t.micro_batch_size, self.dp_rank, self.dp_size,
                            device=self.device, num_workers=self.cfg.data.num_workers,
                            collate_fn=self.collator)
        reports = []
        try:
            with self._eval_mode():
                for _ in range(iters):
                    reports += self._run_schedule(stream, True, self._task_loss(False))
        finally:
            stream.close()
        names = self.task.metric_names(False)
        return self._named(self._reduce(reports, names, []), names)

    def forward_only(self, dataset, collect, width: int, logits: bool = False,
                     seq_length: Optional[int] = None):
        """Per-sample values of one forward pass over all of ``dataset`` under the current
        weights: ``collect(batch, output_tensor) -> (sample indices [n], values [n, width])`` on
        the last stage; DP-sharded, gathered to every rank as a float64 ``[len(dataset), width]``
        array (DPO's reference log-probs). ``output_tensor`` is the per-token loss of the
        samples' labels, or with ``logits`` the model's logits ``[B, S, V/tp]`` (this rank's
        vocabulary shard). ``seq_length``: the samples' length when not --seq-length (the
        pipeline stages exchange activations of that shape)."""
        mbs = self.cfg.training.micro_batch_size
        steps = math.ceil(len(dataset) / (mbs * self.dp_size))
        stream = DataStream(dataset, mbs, self.dp_rank, self.dp_size, device=self.device,
                            collate_fn=self.collator)
        got = []

        def keep(batch, output_tensor):
            index, values = collect(batch, output_tensor)
            got.append((index.cpu(), values.detach().double().cpu()))
            zero = output_tensor.float().sum() * 0  # a scoring pass: no loss
            return zero, torch.ones((), dtype=torch.int, device=zero.device), {}

        try:
            with self.inference():
                self._run_schedule(stream, True, lambda batch: partial(keep, batch),
                                   num_microbatches=steps, seq_length=seq_length, logits=logits)
        finally:
            stream.close()
        full = torch.zeros(len(dataset), width + 1, dtype=torch.float64)  # values, seen count
        for idx, vals in got:
            full[idx, :width] = vals
            full[idx, width] = 1.0
        full = self._all_reduce(full)
        cnt = full[:, width]
        assert bool((cnt > 0).all()), "every sample is scored by some last-stage rank"
        return (full[:, :width] / cnt[:, None]).numpy()

    # -- the loop ------------------------------------------------------------------------------
    def _signal_handler(self):
        from xlda.training.signals import SignalHandler

        h = SignalHandler()
        h.install()
        return h

    def train(self) -> TrainResult:
        signals = self._signal_handler() if self.cfg.checkpoint.exit_on_signal else None
        try:
            return self._train(signals)
        finally:
            self.data.close()  # stop the loader workers
            if signals is not None:
                signals.release()  # restore the previous SIGTERM/SIGUSR1 handlers

    def _train(self, signals) -> TrainResult:
        cfg, t = self.cfg, self.cfg.training
        result = TrainResult(self.iteration, "finished")
        stop, why = t.train_iters, ""
        if t.exit_interval and (self.iteration // t.exit_interval + 1) * t.exit_interval < stop:
            stop = (self.iteration // t.exit_interval + 1) * t.exit_interval
            why = f" of {t.train_iters} (--exit-interval {t.exit_interval} stops at {stop})"
        self.log0(f"[xlda] training: iterations {self.iteration + 1}..{stop}{why}, "
                  f"global batch {t.global_batch_size} = {self.num_microbatches} micro-batches x "
                  f"{t.micro_batch_size} x DP {self.dp_size}, world {self.world}")
        for c in self.model_chunks:
            c.train()
        while self.iteration < t.train_iters:
            if self.switch.should_switch(self.iteration):
                changed = self.data.switch_to_annealing()
                self.log0(f"[xlda] iteration {self.iteration}: WSD decay starts; data -> "
                          f"{'annealing blend' if changed else 'unchanged (no annealing blend)'}")
            lr = self.optimizer.param_groups[0]["lr"]
            # the task's work before the step (RLVR: the rollouts), timed apart from the step
            pre = dict(self.task.before_step(self) or {})
            t_step = time.perf_counter()
            step = self.train_step()
            pre["train_s"] = time.perf_counter() - t_step
            self.iteration += 1
            names = self.task.metric_names(True)
            loss, gnorm = step[names[0]], step["grad_norm"]
            # Checked before any save: a non-finite grad norm means this update already spoiled
            # the weights. Skipped iterations (fp16 loss-scale overflow: nothing applied, grad
            # norm None) are Megatron's normal behaviour and pass.
            bad = [f"loss is {loss}"] if not math.isfinite(loss) else []
            if not step["skipped"] and gnorm is not None and not math.isfinite(gnorm):
                bad.append(f"grad norm is {gnorm}")
            if bad:
                raise TrainingDivergedError(
                    f"{' and '.join(bad)} at iteration {self.iteration}; last good checkpoint: "
                    f"{self.last_checkpoint()}. Resume from it with a lower --lr or check the "
                    f"data around consumed sample {self.data.consumed_samples}")
            losses = {names[0]: loss}
            mtp = {k: v for k, v in step.items() if k.startswith("mtp_")}
            # the realized mix: each language's share of all tokens trained on so far
            for lang, n in step.get("lang_tokens", {}).items():
                self.lang_tokens_total[lang] = self.lang_tokens_total.get(lang, 0) + n
            total = sum(self.lang_tokens_total.values())
            shares = {f"share_{lang}": n / total for lang, n in self.lang_tokens_total.items()} \
                if total else {}
            self.metrics.record(self.iteration, losses, lr, step["grad_norm"], step["tokens"],
                                step["pairs"], step["causal"], mtp_losses=mtp,
                                extra={"consumed_samples": self.data.consumed_samples,
                                       "annealing": int(self.data.use_annealing),
                                       "kv_expansion": step["kv_rows"] / max(step["tokens"], 1),
                                       "kv_expansion_max": step["kv_max_row"] / self.cfg.data.seq_length,
                                       "kv_over_cap": step["kv_over_cap"],
                                       **{f"tokens_{lang}": n for lang, n in step["lang_tokens"].items()},
                                       **shares, **pre,
                                       **{k: step[k] for k in names[1:] if k in step}})
            # the task's evaluation: at --eval-interval, and at --eval-suite-interval (a task
            # with a benchmark suite, xlda.evaluate.during_training, decides which is due)
            if any(n and self.iteration % n == 0 for n in (t.eval_interval, t.eval_suite_interval)):
                with self.metrics.paused():
                    ev = self.evaluate()
                if ev:
                    self.metrics.log_eval(self.iteration, ev)
                    result.eval_history.append({"iteration": self.iteration, **ev})
            ck = cfg.checkpoint
            if ck.save and ck.save_interval and self.iteration % ck.save_interval == 0:
                with self.metrics.paused():
                    self.save()
            if signals is not None and signals.triggered():
                self.log0(f"[xlda] signal received: saving at iteration {self.iteration} and exiting")
                self.save()
                result.exit_reason = "signal"
                break
            if t.exit_interval and self.iteration % t.exit_interval == 0:
                if not (ck.save_interval and self.iteration % ck.save_interval == 0):
                    self.save()
                result.exit_reason = "exit_interval"
                break
        else:
            ck = cfg.checkpoint
            if ck.save and not (ck.save_interval and self.iteration % ck.save_interval == 0):
                self.save()
        result.iteration = self.iteration
        result.history = self.metrics.history
        self.metrics.close()
        return result


def run(run_config: RunConfig, print_fn=print) -> TrainResult:
    return Trainer(run_config, print_fn=print_fn).setup().train()
