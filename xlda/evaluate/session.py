"""A checkpoint opened for scoring: the run config it was trained with, the model at the TP/PP
the evaluation asks for (torch_dist checkpoints hold global tensors, so any layout loads), its
tokenizer, and a ``Scorer`` over them.

The model section and the tokenizer come from the checkpoint's own run_config.yaml, so a
checkpoint is scored as it was trained; the evaluation decides only the layout, the
micro-batch size and (for a checkpoint moved to another machine) the tokenizer path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from xlda.training.config import ConfigError, RunConfig


class EvalError(ConfigError):
    """A user error of an evaluation (a checkpoint, a suite, task data): one line, exit 2."""


class EvalRunConfig(RunConfig):
    """A RunConfig that reads no training data (a scoring run)."""

    def _validate_data_source(self) -> None:
        tok = self.data.tokenizer_model
        if not tok or not Path(tok).exists():
            raise EvalError(f"the checkpoint's tokenizer {tok} does not exist here: pass "
                            "--tokenizer-model (the tokenizer.json the model was trained with)")


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        d = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise EvalError(f"{path} is missing: the checkpoint does not say which model it holds "
                        "(was it written by pretrain_trillion.py, posttrain.py or the "
                        "converter?)") from None
    except yaml.YAMLError as e:
        raise EvalError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(d, dict) or not isinstance(d.get("model"), dict):
        raise EvalError(f"{path}: no 'model' section")
    return d


def checkpoint_run_config(load) -> tuple[dict, int]:
    """(the run config dict of the latest checkpoint under ``load``, its iteration)."""
    from xlda.checkpoint_layout import RUN_CONFIG_FILE, iter_dir, list_iterations, read_latest

    load = Path(load)
    if not load.is_dir():
        raise EvalError(f"--load {load}: no such directory (a --save dir of pretraining or "
                        "post-training; an HF folder goes to --hf)")
    it = read_latest(load, error=EvalError)
    if it is None:
        raise EvalError(f"--load {load} holds no finished checkpoint (no "
                        f"latest_checkpointed_iteration.txt; iteration dirs: "
                        f"{list_iterations(load) or 'none'})")
    return _read_yaml(iter_dir(load, it) / RUN_CONFIG_FILE), it


def eval_run_config(load, saved: dict, *, tensor_parallel: int = 1, pipeline_parallel: int = 1,
                    micro_batch_size: int = 8, tokenizer_model: Optional[str] = None,
                    cuda: bool = False, world_size: int = 1) -> EvalRunConfig:
    """The scoring run of checkpoint ``load`` whose run config is ``saved``."""
    cfg = EvalRunConfig.from_dict({"model": saved["model"]}, where=f"{load}: run_config.yaml")
    data = saved.get("data") or {}
    cfg.data.seq_length = int(data.get("seq_length") or cfg.data.seq_length)
    cfg.data.tokenizer_type = data.get("tokenizer_type") or "HuggingFaceTokenizer"
    cfg.data.tokenizer_model = tokenizer_model or data.get("tokenizer_model")
    cfg.data.mock = False
    p = cfg.parallel
    p.tensor_model_parallel_size, p.pipeline_model_parallel_size = tensor_parallel, pipeline_parallel
    p.use_distributed_optimizer = False  # no optimizer
    p.sequence_parallel = False
    m = cfg.model
    m.sequence_parallel = False
    if not cuda:
        # CPU: fp32 (megatron-core's half-precision path is for GPUs) and the thd executor for
        # flex (the same mask, exact; flex compiles for GPUs)
        m.bf16 = m.fp16 = False
        if m.attention_backend in ("flex", "te"):
            m.attention_backend = "thd"
    mp = tensor_parallel * pipeline_parallel
    if world_size % mp:
        raise EvalError(f"world size {world_size} is not a multiple of --tensor-model-parallel-size "
                        f"x --pipeline-model-parallel-size = {mp}")
    dp = world_size // mp
    t = cfg.training
    t.micro_batch_size, t.global_batch_size, t.train_iters = micro_batch_size, micro_batch_size * dp, 1
    t.eval_iters = 0
    cfg.scheduler.lr_warmup_iters = 0
    cfg.scheduler.lr_decay_style = "constant"
    cfg.checkpoint.load, cfg.checkpoint.save = str(load), None
    cfg.training.run_dir = None
    return cfg


@dataclass
class Session:
    trainer: object
    scorer: object
    tokenizer: object  # xlda.data.tokenizer (tokenize / detokenize / eod)
    iteration: Optional[int]  # of the checkpoint loaded; None: a training run's live weights
    config: EvalRunConfig


def open_session(load, *, tensor_parallel: int = 1, pipeline_parallel: int = 1,
                 micro_batch_size: int = 8, tokenizer_model: Optional[str] = None,
                 print_fn=print) -> Session:
    """Set up the model of the latest checkpoint under ``load`` for scoring (every rank of a
    torchrun world calls it: TP x PP x DP = world size)."""
    import torch

    from xlda.data.tokenizer import build_tokenizer
    from xlda.evaluate.scorer import Scorer, ScoringTask
    from xlda.training.dist_env import resolve_env
    from xlda.training.loop import Trainer

    saved, it = checkpoint_run_config(load)
    cfg = eval_run_config(load, saved, tensor_parallel=tensor_parallel,
                          pipeline_parallel=pipeline_parallel,
                          micro_batch_size=micro_batch_size, tokenizer_model=tokenizer_model,
                          cuda=torch.cuda.is_available(), world_size=resolve_env().world_size)
    cfg.validate()
    tok = build_tokenizer(cfg.data.tokenizer_type, cfg.data.tokenizer_model)
    vocab = cfg.model.vocab_size or tok.vocab_size
    if tok.vocab_size > vocab:
        raise EvalError(f"tokenizer {cfg.data.tokenizer_model} has {tok.vocab_size} tokens, the "
                        f"model {vocab}: not the tokenizer this checkpoint was trained with")
    task = ScoringTask(str(load), vocab, tok.eod)
    trainer = Trainer(cfg, task, print_fn=print_fn).setup()
    scorer = Scorer(trainer, vocab_size=vocab, pad_id=tok.eod, max_length=cfg.data.seq_length,
                    call_size=16 * cfg.training.global_batch_size)
    return Session(trainer, scorer, tok, it, cfg)
