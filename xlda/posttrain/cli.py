"""``posttrain.py sft|dpo|rlvr``: SFT, DPO and RLVR (GRPO) from a pretrained checkpoint, with
pretraining's Megatron-LM flag table (xlda.cli.pretrain.FLAGS: model, parallel, optimizer, scheduler,
checkpoint, logging, training, tokenizer) over a YAML recipe, plus the post-training flags below.
The stage is the first argument (or ``--stage``). User errors end in one
``posttrain: error: ...`` line and exit code 2, as pretraining's.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from xlda.cli.pretrain import FLAGS, _fail_unknown, apply_flags, build_parser
from xlda.posttrain.config import STAGES, PostRunConfig
from xlda.training.config import ConfigError
from xlda.cli.flags import say_error

# Pretraining's data flags that mean XLDA packing of indexed corpora; post-training reads JSONL.
_PRETRAIN_ONLY = {"--data-path", "--mock-data", "--split", "--xlda-alpha", "--xlda-beta",
                  "--xlda-rho", "--xlda-max-kv-expansion", "--xlda-kv-cap-action",
                  "--xlda-affinity-key", "--xlda-affinity-p",
                  "--annealing-data-path", "--annealing-multilingual-multiplier", "--no-annealing"}


def _post(field: str, **kw) -> dict:
    return dict(section="posttrain", field=field, **kw)


POST_FLAGS: dict = {
    **{k: v for k, v in FLAGS.items() if k not in _PRETRAIN_ONLY},
    "--data-path": _post("data_path", nargs="+", help="JSONL(.gz) files: 'messages' "
                         "conversations (sft) or prompt/chosen/rejected pairs (dpo)"),
    "--valid-data-path": _post("valid_data_path", nargs="+",
                               help="held-out JSONL of the same format, for --eval-interval"),
    "--chat-template": _post("chat_template", help="a Jinja chat template file; default: the "
                             "tokenizer_config.json's chat_template, else ChatML"),
    "--strict": _post("strict", action="store_const", const=True,
                      help="stop at the first bad record (default: skip and count per reason)"),
    "--dpo-beta": _post("dpo_beta", type=float, help="DPO's beta (KL strength)"),
    "--ref-cache-dir": _post("ref_cache_dir", help="where DPO's reference log-probs are "
                             "cached (default: next to the first --data-path file)"),
    "--pretrained-checkpoint": _post("pretrained_checkpoint", help="the starting model (an mcore "
                                     "checkpoint dir), read weights only; default: --load when "
                                     "it is not the --save dir"),
    # RLVR (GRPO): TRL's GRPOConfig names
    "--num-generations": _post("num_generations", type=int, help="completions per prompt (a "
                               "group; prompts per step = --global-batch-size / this)"),
    "--max-completion-length": _post("max_completion_length", type=int,
                                     help="tokens generated per completion at most"),
    "--temperature": _post("temperature", type=float, help="rollout sampling temperature (0: "
                           "greedy)"),
    "--top-p": _post("top_p", type=float, help="rollout nucleus sampling mass"),
    "--reward-funcs": _post("reward_funcs", nargs="+", help="reward functions: accuracy, exact, "
                            "format, or module:function / path.py:function"),
    "--reward-weights": _post("reward_weights", nargs="+", type=float,
                              help="one weight per --reward-funcs (default: all 1)"),
    "--beta": _post("beta", type=float, help="KL coefficient to the start model (default 0: "
                    "no reference pass)"),
    "--epsilon": _post("epsilon", type=float, help="the ratio's lower clip, 1 - epsilon"),
    "--epsilon-high": _post("epsilon_high", type=float, help="the ratio's upper clip, "
                            "1 + epsilon_high (DAPO's clip-higher)"),
    "--loss-type": _post("loss_type", help="dapo (token-level normalisation) or grpo "
                         "(per-sequence means)"),
    "--scale-rewards": _post("scale_rewards", help="advantages divided by the std of the "
                             "group, the batch, or none"),
    "--dynamic-sampling": _post("dynamic_sampling", action="store_const", const=True,
                                help="groups whose rewards are all equal carry no loss (DAPO)"),
    "--num-iterations": _post("num_iterations", type=int, help="optimizer steps per "
                              "generation round (TRL's mu)"),
    "--rollout-micro-batch-size": _post("rollout_micro_batch_size", type=int,
                                        help="rows decoded together (default: all of a DP "
                                        "rank's rows of a round)"),
    "--hf-load": _post("hf_load", help="start from a HuggingFace folder: converted through "
                       "xlda.checkpoint_conversion into <save>/start_hf, the starting model"),
}


def _stage(argv: list) -> tuple[Optional[str], list]:
    if argv and argv[0] in STAGES:
        return argv[0], argv[1:]
    if "--stage" in argv:
        i = argv.index("--stage")
        if i + 1 < len(argv) and argv[i + 1] in STAGES:
            return argv[i + 1], argv[:i] + argv[i + 2:]
    return None, argv


def resolve(argv: Sequence[str]) -> tuple[PostRunConfig, argparse.Namespace, list]:
    stage, rest = _stage(list(argv))
    parser = build_parser(POST_FLAGS, prog="posttrain.py", base=PostRunConfig(),
                          usage="%(prog)s {sft,dpo,rlvr} [-h] [--config RECIPE] [--print-config] "
                                "[FLAG ...]",
                          description="SFT / DPO / RLVR on megatron-core from a pretrained checkpoint "
                                      "(Megatron-LM flag names over a --config recipe).")
    args, unknown = parser.parse_known_args(rest)
    if unknown:
        _fail_unknown(parser, unknown, POST_FLAGS)
    if stage is None:
        raise ConfigError(f"give the stage first: posttrain.py {{{','.join(STAGES)}}} ...")
    cfg = PostRunConfig.from_yaml(args.config) if getattr(args, "config", None) else PostRunConfig()
    notes = []
    if not hasattr(args, "xlda_mask") and cfg.model.attention_mask_type != "document":
        notes.append(f"[xlda] attention mask {cfg.model.attention_mask_type} -> document "
                     "(post-training packs whole conversations; no attention across them)")
        cfg.model.attention_mask_type = "document"
    cfg.posttrain.stage = stage
    apply_flags(cfg, args, POST_FLAGS)
    if cfg.data.tokenizer_type is None:
        cfg.data.tokenizer_type = "HuggingFaceTokenizer"
    cfg.model.validate()
    cfg.validate()
    return cfg, args, notes


def build_trainer(cfg: PostRunConfig, print_fn=print):
    """The training loop with this stage's task (xlda.posttrain.sft_task / dpo_task /
    rlvr_task)."""
    from xlda.training.loop import Trainer

    if cfg.posttrain.stage == "dpo":
        from xlda.posttrain.dpo_task import DPOTask as task
    elif cfg.posttrain.stage == "rlvr":
        from xlda.posttrain.rlvr_task import RLVRTask as task
    else:
        from xlda.posttrain.sft_task import SFTTask as task
    return Trainer(cfg, task(), print_fn=print_fn)


def _start_from_hf(cfg: PostRunConfig, say) -> None:
    """--hf-load DIR: the existing converter writes an mcore checkpoint at this run's TP/PP."""
    from pathlib import Path

    from xlda.checkpoint_conversion.convert import ConvertConfig

    if cfg.posttrain.pretrained_checkpoint:
        raise ConfigError("--hf-load and --pretrained-checkpoint both given: start from one")
    if not cfg.checkpoint.save:
        raise ConfigError("--hf-load needs --save (the converted start goes to <save>/start_hf)")
    from xlda.checkpoint_layout import read_latest

    out = Path(cfg.checkpoint.save) / "start_hf"
    converted = read_latest(out) is not None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not converted:
        raise ConfigError(f"--hf-load in a multi-process run: convert first with "
                          f"tools/checkpoint/convert.py --from hf --to mcore --load "
                          f"{cfg.posttrain.hf_load} --save {out} and pass --load {out}")
    if not converted:
        say(f"[xlda] converting {cfg.posttrain.hf_load} -> {out} (mcore, TP "
            f"{cfg.parallel.tensor_model_parallel_size} PP {cfg.parallel.pipeline_model_parallel_size})")
        ConvertConfig(source="hf", target="mcore", load_dir=cfg.posttrain.hf_load,
                      save_dir=str(out),
                      target_tensor_parallel_size=cfg.parallel.tensor_model_parallel_size,
                      target_pipeline_parallel_size=cfg.parallel.pipeline_model_parallel_size
                      ).run()
    cfg.posttrain.pretrained_checkpoint = str(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    rank0 = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0
    say = (lambda m: print(m, flush=True)) if rank0 else (lambda m: None)
    try:  # user input first, before torch is imported: --help and flag errors take well under 1 s
        cfg, args, notes = resolve(argv)
    except (ConfigError, ValueError) as e:
        say_error("posttrain", e)
        return 2
    if getattr(args, "print_config", False):
        print(cfg.to_yaml(), end="")
        return 0
    from xlda import quiet
    from xlda.checkpoint_conversion.arch import ConversionError
    from xlda.training.checkpointing import CheckpointError
    from xlda.training.loop import TrainingDivergedError

    try:
        for n in notes:
            say(n)
        import torch

        if not torch.cuda.is_available():
            quiet.install_cpu()
        if cfg.posttrain.hf_load:
            _start_from_hf(cfg, say)
        trainer = build_trainer(cfg)
    except (ConfigError, ConversionError, ValueError) as e:
        say_error("posttrain", e)
        return 2
    try:
        try:
            trainer.setup()
        except (ConfigError, CheckpointError, FileNotFoundError, ValueError) as e:
            say_error("posttrain", e)
            return 2
        result = trainer.train()
    except (TrainingDivergedError, CheckpointError) as e:
        say_error("posttrain", e)
        return 1
    finally:
        from xlda.training import dist_env

        dist_env.shutdown()
    say(f"[xlda] {cfg.posttrain.stage} done: iteration {result.iteration} ({result.exit_reason})")
    return 0
