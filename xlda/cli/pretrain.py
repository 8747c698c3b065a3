"""``xlda-pretrain`` / ``pretrain_trillion.py``: Megatron-LM flag names over a YAML recipe.

Precedence: RunConfig defaults < ``--config recipe.yaml`` < flags. Only flags actually given
override (argparse defaults are suppressed), so a recipe is never silently reset.

User errors (bad flags, values, data, tokenizer, checkpoint) end in one ``pretrain: error: ...``
line naming the flag and exit code 2 (xlda.cli.preflight checks files and machine before
anything is built); a traceback means a bug.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Optional, Sequence

from xlda import quiet
from xlda.attention.modes import BACKENDS, MODES
from xlda.cli import preflight
from xlda.training.config import (ConfigError, RunConfig, has_weights,
                                  data_path_mixture)
from xlda.cli.flags import say_error, unknown_flags_message


def _bool_flag(section, field, value=True):
    return dict(section=section, field=field, action="store_const", const=value)


def _beta(text: str) -> dict:
    """``en=0.4,ko=0.2`` -> {"en": 0.4, "ko": 0.2}; weights finite and >= 0."""
    out = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        try:
            w = float(v)
        except ValueError:
            w = None
        if not k.strip() or w is None:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected lang=weight pairs like 'en=0.4,ko=0.2'")
        if not math.isfinite(w) or w < 0:
            raise argparse.ArgumentTypeError(
                f"{text!r}: the weight of {k.strip()!r} is {v.strip()}; weights must be finite "
                f"and >= 0")
        out[k.strip()] = w
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
    "--attention-backend": dict(section="model", choices=list(BACKENDS)),
    "--xlda-mask": dict(section="model", field="attention_mask_type", choices=list(MODES)),
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
    # accepted for Megatron-LM command lines; torch_dist is the one format xlda writes
    "--ckpt-format": dict(section="checkpoint", field=None, choices=["torch_dist"]),
    "--finetune": _bool_flag("checkpoint", "finetune"),
    "--no-exit-on-signal": _bool_flag("checkpoint", "exit_on_signal", False),
    "--no-verify-checkpoint": dict(
        _bool_flag("checkpoint", "verify_checkpoint", False),
        help="load without checking the checkpoint's files against the sha256 recorded at save"),
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
    "--eval-suite": dict(section="training"),
    "--eval-suite-interval": dict(section="training", type=int),
    "--eval-suite-limit": dict(section="training", type=int),
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
    "--xlda-affinity-key": dict(section="data", help="affinity packing: the document group field "
                                "(stored by tools/preprocess_data.py --group-key FIELD beside "
                                "each dataset)"),
    "--xlda-affinity-p": dict(section="data", type=float, help="affinity packing: the "
                              "probability that a document is followed, in its window, by a "
                              "member of its group in another language (0: off)"),
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


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are ConfigErrors: main() prints them as one ``pretrain: error:``
    line with exit code 2, like every other user error."""

    def error(self, message):
        raise ConfigError(message)


def _default(spec: dict, flag: str, base=None):
    """RunConfig's default of a flag's field (what applies when neither recipe nor flag sets it)."""
    if spec.get("action") in ("store_true", "store_const"):
        return None  # a switch: its help says what it does
    section = spec["section"]
    field = spec.get("field", flag[2:].replace("-", "_"))
    if section is None or field is None:
        return "torch_dist" if flag == "--ckpt-format" else None
    return getattr(getattr(base or RunConfig(), "model" if section == "seq" else section), field)


def build_parser(flags: Optional[dict] = None, prog: str = "pretrain_trillion.py",
                 description: str = "XLDA pretraining on megatron-core (Megatron-LM flag names). "
                                    "Flags override the --config recipe.",
                 base=None, usage: Optional[str] = None) -> argparse.ArgumentParser:
    """The recipe + flag-table parser; other entry points (xlda.posttrain.cli) pass their own
    table and config class instance ``base`` (for the defaults shown)."""
    from xlda.cli.pretrain_help import HELP

    flags = FLAGS if flags is None else flags
    p = _Parser(
        prog=prog, argument_default=argparse.SUPPRESS, allow_abbrev=False,
        usage=usage or "%(prog)s [-h] [--config RECIPE] [--print-config] [FLAG ...]",
        description=description,
        epilog="Defaults shown are xlda's built-in ones; a --config recipe replaces them and "
               "flags replace the recipe's values. --print-config shows the result.")
    p.add_argument("--config", help="YAML recipe (examples/trillion7b/*.yaml) whose values the "
                                    "flags override")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (YAML) and exit; a training run also writes it "
                        "to <run-dir or save>/run_config.yaml")
    groups = {}
    for flag, spec in flags.items():
        section = {"seq": "data", None: "model"}.get(spec["section"], spec["section"])
        if section not in groups:
            groups[section] = p.add_argument_group(f"{section} (RunConfig.{section})")
        kw = {k: v for k, v in spec.items() if k not in ("section", "field", "help")}
        dest = flag[2:].replace("-", "_")
        text = spec.get("help") or HELP.get(flag, "")
        default = _default(spec, flag, base)
        if text and spec.get("action") not in ("store_true", "store_const"):
            text = text.rstrip(".") + f" (default: {default})".replace("%", "%%")
        groups[section].add_argument(flag, dest=dest, help=text or None, **kw)
    return p


def _fail_unknown(parser, unknown: list[str], flags: Optional[dict] = None):
    # one line (the `pretrain: error: ...` convention), with the shared suggestions
    raise ConfigError(unknown_flags_message(
        unknown, ["--config", "--print-config", *(FLAGS if flags is None else flags)],
        "the supported Megatron-LM flags"))


def _apply_data_path_weights(cfg: RunConfig, args: argparse.Namespace) -> Optional[str]:
    """Megatron's ``--data-path 0.3 A 0.7 B`` becomes the XLDA language mixture: xlda-alpha 0 and
    xlda-beta = the weights summed per language (P(l) is then exactly the normalised weights).
    Returns the line that announces it (None: no weights)."""
    d = cfg.data
    if has_weights(d.annealing_data_path):
        raise ConfigError(
            f"--annealing-data-path {' '.join(map(str, d.annealing_data_path))}: weights are not "
            "supported there (the annealing blend is the main mixture with the multilingual share "
            "x --annealing-multilingual-multiplier); give prefixes only")
    mixture = data_path_mixture(d.data_path)
    if mixture is None:
        return None
    given = [f for f in ("--xlda-alpha", "--xlda-beta") if hasattr(args, f[2:].replace("-", "_"))]
    if given:
        raise ConfigError(
            f"--data-path has weights and {' and '.join(given)} is given too: give the language "
            "mixture once, either as --data-path weights or as --xlda-alpha/--xlda-beta")
    d.xlda_alpha, d.xlda_beta = 0.0, mixture
    d.data_path = [str(x) for x in d.data_path[1::2]]
    total = sum(mixture.values())
    return ("[xlda] --data-path weights -> language mixture P(l) = " + ", ".join(
        f"{lang} {w / total:.3f}" for lang, w in mixture.items()) + " (xlda-alpha 0, xlda-beta "
        "= the weights per language)")


def resolve(argv: Optional[Sequence[str]] = None) -> tuple[RunConfig, argparse.Namespace]:
    """Parse ``argv`` into a validated RunConfig (recipe, then flag overrides)."""
    cfg, args, _ = _resolve(argv)
    return cfg, args


def apply_flags(cfg, args: argparse.Namespace, flags: dict) -> None:
    """Set the config fields of the flags given (only those: a recipe is never reset)."""
    for flag, spec in flags.items():
        dest = flag[2:].replace("-", "_")
        if not hasattr(args, dest) or spec["section"] is None or spec.get("field", 1) is None:
            continue  # accepted, checked by argparse, nothing to set
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


def _resolve(argv):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _fail_unknown(parser, unknown)
    cfg = RunConfig.from_yaml(args.config) if getattr(args, "config", None) else RunConfig()
    apply_flags(cfg, args, FLAGS)
    note = _apply_data_path_weights(cfg, args)
    cfg.model.validate()
    cfg.validate()
    return cfg, args, note


# Where the data layer checks what the user asked for (mixture knobs, packability, splits): a
# ValueError raised there is a user error, reported with the flag names the user typed.
_FLAG_NAMES = (("lang_prefixes", "--data-path"), ("xlda_beta", "--xlda-beta"),
               ("xlda_alpha", "--xlda-alpha"), ("xlda_rho", "--xlda-rho"),
               ("xlda_affinity_p", "--xlda-affinity-p"))


def _data_user_error(exc: BaseException) -> Optional[str]:
    """The one-line message of a user's data error (xlda.data.sampling.MixError), else None
    (any other exception is a bug and keeps its traceback)."""
    from xlda.data.sampling import MixError

    if not isinstance(exc, MixError):
        return None
    msg = str(exc)
    for internal, flag in _FLAG_NAMES:
        msg = msg.replace(internal, flag)
    return msg


def _is_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:  # user input first, before torch is imported: --help and flag errors take well under 1 s
        cfg, args, note = _resolve(argv)
        if getattr(args, "print_config", False):
            print(cfg.to_yaml(), end="")
            return 0
        rank0 = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0
        say = (lambda m: print(m, flush=True)) if rank0 else (lambda m: None)
        if note:
            say(note)
        recipe = getattr(args, "config", None)
        beta_source = (f"data.xlda_beta of {recipe}" if recipe and not hasattr(args, "xlda_beta")
                       else "--xlda-beta")
        cuda = _is_cuda()
        if not cuda:
            quiet.install_cpu()
        preflight.check(cfg, cuda, log=say, beta_source=beta_source)
        task = None
        if cfg.training.eval_suite:
            from xlda.evaluate.during_training import suite_task

            task = suite_task(cfg)  # the suite and its data, checked before any training
    except (ConfigError, ValueError) as e:
        say_error("pretrain", e)
        return 2
    from xlda.attention.stats import ExpansionCapExceeded
    from xlda.training.checkpointing import CheckpointError
    from xlda.training.loop import Trainer, TrainingDivergedError

    trainer = Trainer(cfg, task)
    try:
        try:
            trainer.setup()
        except (ConfigError, CheckpointError) as e:
            say_error("pretrain", e)
            return 2
        except ValueError as e:
            msg = _data_user_error(e)
            if msg is None:
                raise
            say_error("pretrain", msg)
            return 2
        if trainer.rank == 0:
            note = quiet.fallback_note()
            if note:
                print(note, flush=True)
            run_dir = cfg.training.run_dir or cfg.checkpoint.save
            where = f"{run_dir}/run_config.yaml" if run_dir else "not saved: no --save/--run-dir"
            print(f"[xlda] resolved config: {where} (--print-config prints it)", flush=True)
        result = trainer.train()
    except (TrainingDivergedError, CheckpointError, ExpansionCapExceeded) as e:
        say_error("pretrain", e)
        return 1
    finally:
        from xlda.training import dist_env

        dist_env.shutdown()
    if trainer.rank == 0:
        print(f"[xlda] done: iteration {result.iteration} ({result.exit_reason})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
