"""Typed configs of a training run. ``RunConfig`` nests one dataclass per component; its dict form
is the YAML recipe format (``examples/trillion7b/*.yaml``) and the CLI overrides single fields."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml


class ConfigError(ValueError):
    """A recipe or flag that cannot be turned into a RunConfig (message says where and what)."""


# Keys of earlier versions that never changed a run: a saved run_config.yaml holding them still
# loads (dropped, nothing lost), a new recipe gets no such key written.
RETIRED_KEYS = {"CheckpointConfig": {"ckpt_format"}, "LoggingConfig": {"log_mask_density"}}


def _from_dict(cls, d: Optional[dict], where: str):
    d = {k: v for k, v in (d or {}).items() if k not in RETIRED_KEYS.get(cls.__name__, ())}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; valid keys for {cls.__name__}: {sorted(names)}"
        )
    return cls(**d)


def _to_dict(obj) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            v = _to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, dict):
            v = {k: list(x) if isinstance(x, tuple) else x for k, x in v.items()}
        out[f.name] = v
    return out


@dataclass
class DataConfig:
    """Where training text comes from and how XLDA packs it.

    ``paths`` is ``{lang: [prefix, ...]}``; ``data_path`` is Megatron's ``--data-path`` list
    (``[prefix ...]`` or ``[weight prefix weight prefix ...]``), the language read from the
    ``_<lang>_text_document`` suffix. ``annealing_*`` describes the blend used once WSD decay
    starts: its own spec (defaults to the main one) with the multilingual share multiplied.
    """

    paths: Optional[dict] = None
    data_path: Optional[list] = None
    mock: bool = False
    split: str = "969,30,1"
    seq_length: int = 4096
    xlda_alpha: float = 0.3  # P(l) = alpha * corpus share + (1 - alpha) * beta_l
    xlda_beta: Optional[dict] = None  # {lang: weight}; None: uniform over languages
    xlda_rho: float = 0.5
    # affinity packing: the group field stored by preprocess_data.py --group-key, and p
    xlda_affinity_key: Optional[str] = None
    xlda_affinity_p: float = 0.0
    annealing_paths: Optional[dict] = None
    annealing_data_path: Optional[list] = None
    annealing_multilingual_multiplier: float = 3.0
    annealing: bool = True
    primary_language: str = "en"  # the non-"multilingual" share of the annealing blend
    tokenizer_type: Optional[str] = None
    tokenizer_model: Optional[str] = None
    vocab_size: Optional[int] = None  # mock data without a tokenizer
    reset_position_ids: bool = False
    num_workers: int = 0
    # THD/TE executors gather K/V per query document: rows / S is the K/V expansion. Reported
    # always; a row above the cap is counted and logged ("flag") or stops the run ("raise").
    xlda_max_kv_expansion: Optional[float] = None
    xlda_kv_cap_action: str = "flag"

    def build(self, tokenizer=None, seed: int = 1234, annealing: bool = False, **overrides):
        """The xlda.data.XLDADatasetConfig of the main (or annealing) spec."""
        from xlda.data import XLDADatasetConfig

        paths = self.language_paths(annealing=annealing)
        kwargs = dict(
            random_seed=seed, sequence_length=self.seq_length, split=self.split,
            lang_prefixes=None if self.mock else paths, mock=self.mock or not paths,
            xlda_alpha=self.xlda_alpha, xlda_beta=self.xlda_beta, xlda_rho=self.xlda_rho,
            xlda_affinity_key=self.xlda_affinity_key, xlda_affinity_p=self.xlda_affinity_p,
            reset_position_ids=self.reset_position_ids, tokenizer=tokenizer,
        )
        kwargs.update(overrides)
        return XLDADatasetConfig(**kwargs)

    def language_paths(self, annealing: bool = False) -> Optional[dict]:
        """``{lang: [prefix, ...]}`` of the main (or annealing) spec, merging both path styles."""
        paths = self.annealing_paths if annealing else self.paths
        flat = self.annealing_data_path if annealing else self.data_path
        if annealing and paths is None and flat is None:
            paths, flat = self.paths, self.data_path
        out: dict = {k: list(v) for k, v in (paths or {}).items()}
        for prefix in _strip_weights(flat or []):
            out.setdefault(language_of_prefix(prefix), []).append(prefix)
        return out or None


def _strip_weights(items: list) -> list:
    items = [str(x) for x in items]
    if len(items) >= 2 and _is_number(items[0]):
        _check_pairs(items, "--data-path")
        return items[1::2]
    return items


def _check_pairs(items: list, flag: str) -> None:
    if len(items) % 2 or not all(_is_number(w) for w in items[0::2]) \
            or any(_is_number(p) for p in items[1::2]):
        raise ConfigError(f"{flag} {' '.join(items)}: Megatron's weighted form is "
                          f"'weight prefix weight prefix ...'; weights and prefixes must come in pairs")
    bad = [w for w in items[0::2] if not math.isfinite(float(w)) or float(w) < 0]
    if bad:
        raise ConfigError(f"{flag}: weights {bad} must be finite and >= 0")


def has_weights(items: Optional[list]) -> bool:
    """Whether a --data-path style list uses Megatron's weighted form."""
    items = [str(x) for x in items or []]
    return len(items) >= 2 and _is_number(items[0])


def data_path_mixture(items: Optional[list]) -> Optional[dict]:
    """Megatron's weighted ``--data-path w1 p1 w2 p2 ...`` as {lang: summed weight}; None when
    the list has no weights. The weights are the language mixture: xlda packs by language."""
    if not has_weights(items):
        return None
    items = [str(x) for x in items]
    _check_pairs(items, "--data-path")
    out: dict = {}
    for w, prefix in zip(items[0::2], items[1::2]):
        lang = language_of_prefix(prefix)
        out[lang] = out.get(lang, 0.0) + float(w)
    if sum(out.values()) <= 0:
        raise ConfigError(f"--data-path {' '.join(items)}: all weights are 0")
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def parse_split(split: str) -> list[float]:
    """Megatron's ``--split`` (``"969,30,1"``, ``"98,2"``, ``"100"``; "," or "/") as three
    shares; missing shares are 0, as Megatron pads them. Refuses what Megatron would mis-read."""
    text = str(split)
    parts = [p.strip() for p in text.replace("/", ",").split(",")]
    try:
        shares = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--split {text!r}: expected up to three comma-separated numbers "
                          f"(train,valid,test), e.g. 969,30,1") from None
    if len(shares) > 3:
        raise ConfigError(f"--split {text!r}: at most three shares (train,valid,test)")
    if any(not math.isfinite(x) or x < 0 for x in shares):
        raise ConfigError(f"--split {text!r}: shares must be finite and >= 0")
    shares += [0.0] * (3 - len(shares))
    if shares[0] <= 0:
        raise ConfigError(f"--split {text!r}: the training share (first number) must be > 0")
    return shares


def language_of_prefix(prefix: str) -> str:
    """``.../corpus_ko_text_document`` -> ``ko`` (the preprocess tool's naming, any JSON key)."""
    from xlda.data.prefix import parse_prefix

    try:
        return parse_prefix(prefix).lang
    except ValueError as e:
        raise ConfigError(str(e)) from None


@dataclass
class ParallelConfig:
    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    context_parallel_size: int = 1
    sequence_parallel: bool = False
    use_distributed_optimizer: bool = False
    overlap_grad_reduce: bool = False
    distributed_backend: Optional[str] = None  # None: nccl with a GPU, gloo without

    def build(self):
        """DDP config for megatron-core's DistributedDataParallel."""
        from megatron.core.distributed import DistributedDataParallelConfig

        return DistributedDataParallelConfig(
            grad_reduce_in_fp32=True,
            overlap_grad_reduce=self.overlap_grad_reduce,
            use_distributed_optimizer=self.use_distributed_optimizer,
        )


@dataclass
class OptimizerSettings:
    optimizer: str = "adam"
    lr: float = 3e-4
    min_lr: float = 3e-5
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    clip_grad: float = 1.0

    def build(self, model_chunks, *, bf16: bool, use_distributed_optimizer: bool):
        from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

        cfg = OptimizerConfig(
            optimizer=self.optimizer, lr=self.lr, min_lr=self.min_lr,
            weight_decay=self.weight_decay, adam_beta1=self.adam_beta1,
            adam_beta2=self.adam_beta2, adam_eps=self.adam_eps, clip_grad=self.clip_grad,
            bf16=bf16, use_distributed_optimizer=use_distributed_optimizer,
        )
        return get_megatron_optimizer(cfg, model_chunks)


@dataclass
class SchedulerConfig:
    """LR schedule in iterations (Megatron's ``--lr-*-iters`` flags)."""

    lr_decay_style: str = "WSD"
    lr_wsd_decay_style: str = "linear"
    lr_warmup_iters: int = 0
    lr_decay_iters: Optional[int] = None  # None: train_iters
    lr_wsd_decay_iters: Optional[int] = None  # None: 10% of the decay iterations
    lr_warmup_init: float = 0.0
    start_weight_decay: Optional[float] = None
    end_weight_decay: Optional[float] = None
    weight_decay_incr_style: str = "constant"


@dataclass
class CheckpointConfig:
    save: Optional[str] = None
    load: Optional[str] = None
    save_interval: Optional[int] = None
    finetune: bool = False
    exit_on_signal: bool = True
    verify_checkpoint: bool = True  # check the files' recorded sha256 before loading


@dataclass
class LoggingConfig:
    log_interval: int = 1
    tensorboard_dir: Optional[str] = None
    peak_tflops: Optional[float] = None  # per device; None: a known GPU's bf16 peak, else no MFU


@dataclass
class TrainingConfig:
    micro_batch_size: int = 1
    global_batch_size: int = 8
    train_iters: int = 100
    eval_interval: Optional[int] = None
    eval_iters: int = 0
    # a benchmark suite (xlda.evaluate: a suite YAML) scored every eval_suite_interval iterations
    eval_suite: Optional[str] = None
    eval_suite_interval: Optional[int] = None
    eval_suite_limit: Optional[int] = None  # items per task (None: all)
    seed: int = 1234
    exit_interval: Optional[int] = None  # stop (after saving) at this iteration; for resume tests
    run_dir: Optional[str] = None  # resolved config + tensorboard default; None: save dir

    def num_microbatches(self, dp_size: int) -> int:
        per_step = self.micro_batch_size * dp_size
        if self.global_batch_size % per_step:
            raise ConfigError(
                f"--global-batch-size {self.global_batch_size} is not divisible by "
                f"--micro-batch-size {self.micro_batch_size} x data-parallel size {dp_size}"
            )
        return self.global_batch_size // per_step


def model_config_cls():
    from xlda.model import ModelConfig

    return ModelConfig


@dataclass
class RunConfig:
    model: Any = None  # xlda.model.ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    SECTIONS = {
        "data": DataConfig, "parallel": ParallelConfig, "optimizer": OptimizerSettings,
        "scheduler": SchedulerConfig, "checkpoint": CheckpointConfig, "logging": LoggingConfig,
        "training": TrainingConfig,
    }

    def __post_init__(self):
        if self.model is None:
            self.model = model_config_cls()()

    def to_dict(self) -> dict:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "config") -> "RunConfig":
        d = dict(d or {})
        allowed = {"model", *cls.SECTIONS}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ConfigError(f"{where}: unknown section(s) {unknown}; valid: {sorted(allowed)}")
        kwargs = {k: _from_dict(c, d.get(k), f"{where}: section '{k}'")
                  for k, c in cls.SECTIONS.items()}
        kwargs["model"] = _from_dict(model_config_cls(), d.get("model"), f"{where}: section 'model'")
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path) -> "RunConfig":
        path = Path(path)
        try:
            d = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"recipe {path} not found") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"recipe {path}: invalid YAML: {e}") from None
        if d is not None and not isinstance(d, dict):
            raise ConfigError(f"recipe {path}: top level must be a mapping of sections")
        return cls.from_dict(d or {}, where=str(path))

    def to_yaml(self, path=None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    def validate(self) -> "RunConfig":
        t, s = self.training, self.scheduler
        if t.train_iters <= 0:
            raise ConfigError(f"--train-iters must be > 0, got {t.train_iters}")
        decay = self.decay_iters
        if s.lr_warmup_iters >= decay:
            raise ConfigError(
                f"--lr-warmup-iters {s.lr_warmup_iters} must be < decay iterations {decay}")
        if s.lr_decay_style == "WSD" and self.wsd_decay_iters() > decay - s.lr_warmup_iters:
            raise ConfigError(
                f"--lr-wsd-decay-iters {self.wsd_decay_iters()} exceeds the post-warmup span "
                f"{decay - s.lr_warmup_iters}")
        if self.optimizer.min_lr > self.optimizer.lr:
            raise ConfigError(f"--min-lr {self.optimizer.min_lr} > --lr {self.optimizer.lr}")
        if self.data.xlda_kv_cap_action not in ("flag", "raise"):
            raise ConfigError(f"data.xlda_kv_cap_action must be 'flag' or 'raise', got "
                              f"{self.data.xlda_kv_cap_action!r}")
        if self.data.xlda_max_kv_expansion is not None and self.data.xlda_max_kv_expansion < 1:
            raise ConfigError("--xlda-max-kv-expansion must be >= 1 (1.0 = document attention)")
        self._validate_eval_suite()
        self._validate_data_source()
        self._validate_data()
        return self

    def _validate_eval_suite(self) -> None:
        t = self.training
        if t.eval_suite is None:
            if t.eval_suite_interval or t.eval_suite_limit:
                raise ConfigError("--eval-suite-interval/--eval-suite-limit need --eval-suite FILE")
            return
        if not t.eval_suite_interval or t.eval_suite_interval < 1:
            raise ConfigError(f"--eval-suite {t.eval_suite} needs --eval-suite-interval N >= 1 "
                              "(iterations between two scorings)")
        if t.eval_suite_limit is not None and t.eval_suite_limit < 1:
            raise ConfigError("--eval-suite-limit must be >= 1")
        if not self.data.tokenizer_model:
            raise ConfigError(f"--eval-suite {t.eval_suite} scores text: it needs the run's "
                              "--tokenizer-model (mock data has none)")

    def _validate_data_source(self) -> None:
        """Where training text comes from (a hook: post-training reads its own JSONL)."""
        if not self.data.mock and not self.data.language_paths():
            raise ConfigError("no training data: pass --data-path / data.paths, or --mock-data")

    def _validate_data(self) -> None:
        d, m, t = self.data, self.model, self.training
        if d.seq_length < 2:
            raise ConfigError(f"--seq-length must be >= 2 (every sample packs documents of >= 2 "
                              f"languages), got {d.seq_length}")
        if has_weights(d.data_path):
            raise ConfigError(
                f"data.data_path {d.data_path} has Megatron weights, which xlda does not apply "
                "per prefix: give them to pretrain_trillion.py --data-path (it maps them onto "
                "the language mixture) or set data.xlda_alpha 0 and data.xlda_beta instead")
        bad = {k: v for k, v in (d.xlda_beta or {}).items()
               if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0}
        if bad:
            raise ConfigError(f"--xlda-beta {bad}: weights must be finite numbers >= 0")
        if not 0.0 <= d.xlda_alpha <= 1.0 or not math.isfinite(d.xlda_alpha):
            raise ConfigError(f"--xlda-alpha must be in [0, 1], got {d.xlda_alpha}")
        if not 0.0 <= d.xlda_affinity_p <= 1.0:
            raise ConfigError(f"--xlda-affinity-p must be in [0, 1], got {d.xlda_affinity_p}")
        if d.xlda_affinity_p > 0 and not d.xlda_affinity_key:
            raise ConfigError("--xlda-affinity-p > 0 needs --xlda-affinity-key FIELD (the group "
                              "field tools/preprocess_data.py --group-key FIELD stored)")
        if d.xlda_affinity_p > 0 and d.mock:
            raise ConfigError("--xlda-affinity-p > 0 needs real data with groups, not "
                              "--mock-data")
        if d.xlda_affinity_key is not None:
            from xlda.data.groups import check_field

            try:
                check_field(d.xlda_affinity_key, "--xlda-affinity-key")
            except ValueError as e:
                raise ConfigError(str(e)) from None
        if not 0.0 < d.xlda_rho <= 1.0:
            raise ConfigError(f"--xlda-rho must be in (0, 1] (the per-document language switch "
                              f"probability), got {d.xlda_rho}")
        shares = parse_split(d.split)
        if t.eval_iters and t.eval_interval and shares[1] == 0 and not d.mock:
            raise ConfigError(
                f"--split {d.split} leaves no validation data but --eval-interval "
                f"{t.eval_interval} --eval-iters {t.eval_iters} ask for evaluation; give the "
                "second share a weight, or pass --eval-iters 0")
        if d.reset_position_ids and m.position_embedding_type == "rope":
            raise ConfigError(
                "--reset-position-ids has no effect with RoPE (megatron-core builds the rotary "
                "embedding from the sequence length, not from position ids): drop it, or use "
                "--position-embedding-type learned_absolute")

    def check_device(self, cuda: bool) -> None:
        """What this run needs of the device, checked once (the CLIs' pre-flight and the
        trainer's set-up both call it): ConfigError naming the flag, before any work."""
        if cuda:
            return
        m = self.model
        if m.attention_backend == "flex":
            raise ConfigError(
                "--attention-backend flex cannot train on CPU: torch has no FlexAttention "
                "backward on CPU (only the forward). Use --attention-backend thd (the same math, "
                "exact) or sdpa on CPU; flex on a GPU")
        if m.bf16 or m.fp16:
            raise ConfigError("--bf16/--fp16 need a GPU (megatron-core's mixed-precision "
                              "optimizer accepts only CUDA tensors); drop them for CPU runs")
        if self.parallel.use_distributed_optimizer:
            raise ConfigError("--use-distributed-optimizer needs GPUs (megatron-core rejects CPU "
                              "params); drop it for CPU runs")
        if m.sequence_parallel or self.parallel.sequence_parallel:
            raise ConfigError("--sequence-parallel needs Transformer Engine norms; drop it on CPU")

    @property
    def decay_iters(self) -> int:
        """The iteration the LR schedule ends at: --lr-decay-iters, else --train-iters."""
        return self.scheduler.lr_decay_iters or self.training.train_iters

    def wsd_decay_iters(self) -> int:
        s = self.scheduler
        if s.lr_wsd_decay_iters is not None:
            return s.lr_wsd_decay_iters
        return max(1, self.decay_iters // 10)

    @property
    def decay_start(self) -> int:
        """Completed iterations after which WSD decays (and annealing data is read)."""
        return self.decay_iters - self.wsd_decay_iters()

    @property
    def annealing_on(self) -> bool:
        """The data moves to the annealing blend at decay_start (--annealing-data-path, WSD)."""
        return bool(self.data.annealing) and self.scheduler.lr_decay_style == "WSD"
