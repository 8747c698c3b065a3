"""``xlda-pretrain`` / ``pretrain_trillion.py``: Megatron-LM flag names over a YAML recipe.

Precedence: RunConfig defaults < ``--config recipe.yaml`` < flags. Only flags actually given
override (argparse defaults are suppressed), so a recipe is never silently reset.
"""
from __future__ import annotations

import argparse
import difflib
import sys
import warnings
from typing import Optional, Sequence

from xlda.training.config import ConfigError, RunConfig


def _bool_flag(section, field, value=True):
    return dict(section=section, field=field, action="store_const", const=value)


def _beta(text: str) -> dict:
    """``en=0.4,ko=0.2`` -> {"en": 0.4, "ko": 0.2}."""
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise argparse.ArgumentTypeError(
                f"--xlda-beta {text!r}: expected lang=weight pairs like 'en=0.4,ko=0.2'")
        k, v = part.split("=", 1)
        out[k.strip()] = float(v)
    return out


def _opt_int(text: str):
    return None if text.lower() == "none" else int(text)


# flag -> (section, field, argparse kwargs). Section "model" fields are ModelConfig's names.
FLAGS: dict[str, dict] = {
    # model
    "--num-layers": dict(section="model", type=int),
    "--hidden-size": dict(section="model", type=int),
    "--num-attention-heads": dict(section="model", type=int),
    "--num-query-groups": dict(section="model", type=int),
    "--group-query-attention": dict(section=None, action="store_true"),  # implied by the above
    "--ffn-hidden-size": dict(section="model", type=int),
    "--kv-channels": dict(section="model", type=int),
    "--vocab-size": dict(section="model", type=int),
    "--make-vocab-size-divisible-by": dict(section="model", type=int),
    "--max-position-embeddings": dict(section="model", type=int),
    "--position-embedding-type": dict(section="model", choices=["rope", "learned_absolute", "none"]),
    "--rotary-base": dict(section="model", type=int),
    "--rotary-percent": dict(section="model", type=float),
    "--normalization": dict(section="model", choices=["RMSNorm", "LayerNorm"]),
    "--norm-epsilon": dict(section="model", type=float),
    "--swiglu": _bool_flag("model", "swiglu"),
    "--disable-bias-linear": _bool_flag("model", "add_bias_linear", False),
    "--add-bias-linear": _bool_flag("model", "add_bias_linear"),
    "--qk-layernorm": _bool_flag("model", "qk_layernorm"),
    "--untie-embeddings-and-output-weights": _bool_flag("model", "untie_embeddings_and_output_weights"),
    "--init-method-std": dict(section="model", type=float),
    "--hidden-dropout": dict(section="model", type=float),
    "--attention-dropout": dict(section="model", type=float),
    "--mtp-num-layers": dict(section="model", type=_opt_int),
    "--mtp-loss-scaling-factor": dict(section="model", type=float),
    "--transformer-impl": dict(section="model", choices=["local", "transformer_engine"]),
    "--attention-backend": dict(section="model", choices=["sdpa", "thd", "flex", "te"]),
    "--xlda-mask": dict(section="model", field="attention_mask_type",
                        choices=["xlda", "document", "causal"]),
    "--bf16": _bool_flag("model", "bf16"),
    "--fp16": _bool_flag("model", "fp16"),
    "--fp8-format": dict(section="model", choices=["e4m3", "hybrid"]),
    "--fp8-recipe": dict(section="model"),
    "--sequence-parallel": _bool_flag("model", "sequence_parallel"),
    "--recompute-granularity": dict(section="model", choices=["selective"]),
    # parallel
    "--tensor-model-parallel-size": dict(section="parallel", type=int),
    "--pipeline-model-parallel-size": dict(section="parallel", type=int),
    "--context-parallel-size": dict(section="parallel", type=int),
    "--use-distributed-optimizer": _bool_flag("parallel", "use_distributed_optimizer"),
    "--overlap-grad-reduce": _bool_flag("parallel", "overlap_grad_reduce"),
    "--distributed-backend": dict(section="parallel", choices=["nccl", "gloo"]),
    # optimizer
    "--optimizer": dict(section="optimizer", choices=["adam", "sgd"]),
    "--lr": dict(section="optimizer", type=float),
    "--min-lr": dict(section="optimizer", type=float),
    "--weight-decay": dict(section="optimizer", type=float),
    "--adam-beta1": dict(section="optimizer", type=float),
    "--adam-beta2": dict(section="optimizer", type=float),
    "--adam-eps": dict(section="optimizer", type=float),
    "--clip-grad": dict(section="optimizer", type=float),
    # scheduler
    "--lr-decay-style": dict(section="scheduler",
                             choices=["constant", "linear", "cosine", "inverse-square-root", "WSD"]),
    "--lr-wsd-decay-style": dict(section="scheduler",
                                 choices=["linear", "cosine", "exponential", "minus_sqrt"]),
    "--lr-warmup-iters": dict(section="scheduler", type=int),
    "--lr-decay-iters": dict(section="scheduler", type=int),
    "--lr-wsd-decay-iters": dict(section="scheduler", type=int),
    "--lr-warmup-init": dict(section="scheduler", type=float),
    "--start-weight-decay": dict(section="scheduler", type=float),
    "--end-weight-decay": dict(section="scheduler", type=float),
    "--weight-decay-incr-style": dict(section="scheduler", choices=["constant", "linear", "cosine"]),
    # checkpoint
    "--save": dict(section="checkpoint"),
    "--load": dict(section="checkpoint"),
    "--save-interval": dict(section="checkpoint", type=int),
    "--ckpt-format": dict(section="checkpoint", choices=["torch_dist"]),
    "--finetune": _bool_flag("checkpoint", "finetune"),
    "--no-exit-on-signal": _bool_flag("checkpoint", "exit_on_signal", False),
    # logging
    "--log-interval": dict(section="logging", type=int),
    "--tensorboard-dir": dict(section="logging"),
    "--peak-tflops": dict(section="logging", type=float),
    # training
    "--micro-batch-size": dict(section="training", type=int),
    "--global-batch-size": dict(section="training", type=int),
    "--train-iters": dict(section="training", type=int),
    "--eval-interval": dict(section="training", type=int),
    "--eval-iters": dict(section="training", type=int),
    "--seed": dict(section="training", type=int),
    "--exit-interval": dict(section="training", type=int),
    "--run-dir": dict(section="training"),
    # data
    "--data-path": dict(section="data", nargs="+"),
    "--mock-data": _bool_flag("data", "mock"),
    "--split": dict(section="data"),
    "--tokenizer-type": dict(section="data", choices=["HuggingFaceTokenizer", "SentencePieceTokenizer"]),
    "--tokenizer-model": dict(section="data"),
    "--xlda-alpha": dict(section="data", type=float),
    "--xlda-beta": dict(section="data", type=_beta),
    "--xlda-rho": dict(section="data", type=float),
    "--xlda-max-kv-expansion": dict(section="data", type=float),
    "--xlda-kv-cap-action": dict(section="data", choices=["flag", "raise"]),
    "--annealing-data-path": dict(section="data", nargs="+"),
    "--annealing-multilingual-multiplier": dict(section="data", type=float),
    "--no-annealing": _bool_flag("data", "annealing", False),
    "--reset-position-ids": _bool_flag("data", "reset_position_ids"),
    "--num-workers": dict(section="data", type=int,
                          help="DataLoader worker processes per rank (Megatron-LM's flag; 0 = load in the trainer)"),
    # both the model's and the data's sequence length
    "--seq-length": dict(section="seq", type=int),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pretrain_trillion.py", argument_default=argparse.SUPPRESS, allow_abbrev=False,
        description="XLDA pretraining on megatron-core (Megatron-LM flag names). "
                    "Flags override the --config recipe.")
    p.add_argument("--config", help="YAML recipe (examples/trillion7b/*.yaml)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config and exit")
    for flag, spec in FLAGS.items():
        kw = {k: v for k, v in spec.items() if k not in ("section", "field")}
        dest = flag[2:].replace("-", "_")
        p.add_argument(flag, dest=dest, **kw)
    return p


def _fail_unknown(parser, unknown: list[str]):
    flags = [u for u in unknown if u.startswith("-")]
    known = ["--config", "--print-config", *FLAGS]
    lines = []
    for u in flags or unknown:
        close = difflib.get_close_matches(u.split("=")[0], known, n=3)
        lines.append(f"  {u}" + (f"   (did you mean {', '.join(close)}?)" if close else ""))
    raise ConfigError("unknown argument(s):\n" + "\n".join(lines) +
                      "\nrun with --help for the supported Megatron-LM flags")


def resolve(argv: Optional[Sequence[str]] = None) -> tuple[RunConfig, argparse.Namespace]:
    """Parse ``argv`` into a validated RunConfig (recipe, then flag overrides)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _fail_unknown(parser, unknown)
    cfg = RunConfig.from_yaml(args.config) if getattr(args, "config", None) else RunConfig()
    for flag, spec in FLAGS.items():
        dest = flag[2:].replace("-", "_")
        if not hasattr(args, dest) or spec["section"] is None:
            continue
        value = getattr(args, dest)
        if spec["section"] == "seq":
            cfg.model.seq_length = value
            cfg.data.seq_length = value
            continue
        setattr(getattr(cfg, spec["section"]), spec.get("field", dest), value)
    if cfg.model.seq_length != cfg.data.seq_length:
        raise ConfigError(f"model.seq_length {cfg.model.seq_length} != data.seq_length "
                          f"{cfg.data.seq_length}; set both (or pass --seq-length)")
    if cfg.model.sequence_parallel:
        cfg.parallel.sequence_parallel = True
    cfg.model.validate()
    cfg.validate()
    return cfg, args


def main(argv: Optional[Sequence[str]] = None) -> int:
    warnings.filterwarnings("ignore", message=".*(Transformer Engine|Apex).*")
    try:
        cfg, args = resolve(argv)
    except (ConfigError, ValueError) as e:
        print(f"pretrain: error: {e}", file=sys.stderr)
        return 2
    if getattr(args, "print_config", False):
        print(cfg.to_yaml(), end="")
        return 0
    from xlda.training.loop import Trainer, TrainingDivergedError

    trainer = Trainer(cfg)
    try:
        trainer.setup()
        if trainer.rank == 0:
            print("[xlda] resolved config:\n" + cfg.to_yaml(), flush=True)
        result = trainer.train()
    except TrainingDivergedError as e:
        print(f"pretrain: error: {e}", file=sys.stderr)
        return 1
    finally:
        from xlda.training import dist_env

        dist_env.shutdown()
    if trainer.rank == 0:
        print(f"[xlda] done: iteration {result.iteration} ({result.exit_reason})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
