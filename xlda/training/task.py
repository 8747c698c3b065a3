"""The seam between the training loop and what it trains: a ``TrainTask`` says what a run reads,
where it starts from, how a micro-batch is scored (with which named metrics) and how the model
is evaluated. ``xlda.training.loop.Trainer(cfg, task)`` owns the rest: distributed set-up, the
pipeline schedules, optimizer and scheduler, checkpoints, signals, the divergence check and
logging. Pretraining is ``xlda.training.lm_task.LMTask``; SFT and DPO are in ``xlda.posttrain``.

Metrics are named ``(sum, count)`` pairs: a task's loss function reports each one as a 2-vector,
the trainer adds them over micro-batches and over the world and logs ``sum / count``. So a TP
copy (counted in both), a pipeline stage without a loss (reports nothing) and DP shards need no
rule of the task's, and no metric name of a task lives in the loop or the logger.

Torch-free: the trainer imports it, a task may live in any higher layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence, runtime_checkable


@dataclass
class TaskData:
    """What a task trains and evaluates on. Samples follow CONTRACTS (tokens, labels, loss_mask,
    position_ids, doc_ids, lang_ids, each ``[rows_per_sample, S]`` or ``[S]``); ``collator`` is
    the DataLoader's collate_fn and adds the batch statistics (xlda.training.batches)."""

    train: Any
    collator: Callable
    languages: tuple  # lang_ids index this tuple (per-language counts and losses)
    valid: Any = None  # read by the task's evaluate(); None: nothing to evaluate on
    annealing: Any = None  # the WSD decay-phase blend (pretraining), None: none
    vocab_size: Optional[int] = None  # the task's tokenizer decides the model's vocabulary


@dataclass(frozen=True)
class Start:
    """Where a run starts from: a checkpoint directory (Megatron's layout) or random weights."""

    load: Optional[str] = None  # None: random weights
    # True: the weights only (iteration 0, a fresh optimizer, scheduler and data position);
    # False: resume everything the checkpoint holds
    weights_only: bool = False
    note: str = ""  # said once at set-up, before loading (why this start); empty: nothing


MetricReport = Mapping[str, Any]  # name -> 2-vector tensor (sum, count)


@runtime_checkable
class TrainTask(Protocol):
    loss_name: str  # the loss's metric name ("lm loss", "dpo loss"): the first of metric_names
    rows_per_sample: int  # model rows per dataset sample (DPO: a chosen and a rejected row)
    log_formats: Mapping[str, str]  # metrics the log line shows besides the losses: name -> fmt
    # False: a scoring task (evaluation) that only runs Trainer.forward_only: the trainer
    # builds no optimizer, scheduler or gradient buffers
    trains: bool

    def build_data(self, cfg, log: Callable[[str], None]) -> TaskData: ...

    def start(self, cfg) -> Start: ...

    def metric_names(self, training: bool) -> Sequence[str]:
        """Every name the loss function may report, in a fixed order (the all-reduce layout)."""

    def loss(self, batch: dict, output_tensor, training: bool) -> tuple:
        """Megatron's 3-tuple: (loss sum, token count, {metric name: (sum, count)})."""

    def ready(self, trainer) -> None:
        """Called once the start weights are loaded (DPO scores its reference pass here)."""

    def before_step(self, trainer) -> Mapping[str, float]:
        """Called before each training step (RLVR generates its rollouts here); returns metrics
        for that iteration's log entry (e.g. the rollout's seconds), or an empty dict."""

    def state_dict(self) -> dict:
        """The task's own resumable state (tensors and plain values), kept in the checkpoint."""

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()`` when a run resumes (before ``ready``)."""

    def evaluate(self, trainer) -> dict: ...

    def run_files(self) -> dict:
        """Files the run's --save directory keeps beside the checkpoints: name -> text."""


class BaseTask:
    """Defaults for a task: one row per sample, a start from --load (weights only with
    --finetune), nothing to prepare, nothing to evaluate, no extra files."""

    loss_name = "lm loss"
    rows_per_sample = 1
    log_formats: Mapping[str, str] = {}
    trains = True

    def start(self, cfg) -> Start:
        ck = cfg.checkpoint
        return Start(ck.load, weights_only=ck.finetune)

    def metric_names(self, training: bool) -> Sequence[str]:
        return (self.loss_name,)

    def ready(self, trainer) -> None:
        return None

    def before_step(self, trainer) -> Mapping[str, float]:
        return {}

    def evaluate(self, trainer) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None

    def run_files(self) -> dict:
        return {}
