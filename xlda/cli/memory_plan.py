"""``tools/memory_plan.py``: the per-GPU memory plan of a layout from a run recipe (the formulas
are xlda.training.memory_plan's)."""
from __future__ import annotations

from xlda.training.memory_plan import (DEFAULT_KV_EXPANSION, GB, MemoryPlanConfig,
                                       kv_expansion_from_metrics, meta_parameter_count)


def _recipe_value(path, key: str, default):
    """A parallel-section key as the recipe wrote it: the planner's default differs from the
    run's (a plan is for a GPU cluster, where the distributed optimizer is the norm)."""
    import yaml

    return ((yaml.safe_load(open(path)) or {}).get("parallel") or {}).get(key, default)


def main(argv=None) -> int:
    """CLI: ``python tools/memory_plan.py --config examples/trillion7b/trillion_7b.yaml
    --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --num-nodes 32``."""
    import argparse
    from pathlib import Path

    from xlda.cli.flags import FlagParser
    from xlda.training.config import ConfigError, RunConfig

    p = FlagParser(prog="memory_plan.py",
        description="Per-GPU memory plan of a training layout (an estimate; formulas in "
                    "xlda/training/memory_plan.py). The world is --num-nodes x --gpus-per-node "
                    "GPUs (default 1 x 8); data-parallel size = world / (TP x PP). Unset layout "
                    "flags come from the recipe, else the defaults shown.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", required=True, help="run recipe YAML (examples/trillion7b/*.yaml)")
    p.add_argument("--tensor-model-parallel-size", type=int,
                   help="Degree of tensor model parallelism (None: the recipe's, else 1).")
    p.add_argument("--pipeline-model-parallel-size", type=int,
                   help="Degree of pipeline model parallelism (None: the recipe's, else 1).")
    p.add_argument("--num-nodes", type=int, default=1, help="Number of nodes.")
    p.add_argument("--gpus-per-node", type=int, default=8,
                   help="GPUs per node; the world is num-nodes x this.")
    p.add_argument("--micro-batch-size", type=int,
                   help="Batch size per model instance (None: the recipe's, else 1).")
    p.add_argument("--seq-length", type=int, help="Sequence length (None: the recipe's).")
    p.add_argument("--recompute-granularity", choices=["none", "selective", "full"],
                   help="Activation recomputation (None: the recipe's; selective = MLP, as the "
                        "trainer).")
    p.add_argument("--use-distributed-optimizer", action=argparse.BooleanOptionalAction,
                   help="Shard optimizer state over data-parallel ranks (None: the recipe's, "
                        "else on).")
    p.add_argument("--sequence-parallel", action=argparse.BooleanOptionalAction,
                   help="Enable sequence parallel optimization (None: the recipe's, else off).")
    p.add_argument("--gpu-memory-gb", type=float, default=80.0,
                   help="Memory of one GPU in GB (80: H100/A100 80GB).")
    p.add_argument("--attention-backend", choices=["sdpa", "thd", "flex", "te"],
                   help="default: the recipe's")
    p.add_argument("--kv-expansion", type=float,
                   help=f"THD/TE K/V expansion to plan for (default: p99 from --metrics-jsonl, else "
                        f"{DEFAULT_KV_EXPANSION}, the p99 of real packed samples at S=4096)")
    p.add_argument("--metrics-jsonl", help="a trainer run's metrics.jsonl: plan for the p99 of its "
                                           "per-step worst-sample K/V expansion")
    p.add_argument("--rollout-rows", type=int, default=0,
                   help="RLVR: rows decoded together per model replica (posttrain.py "
                        "--rollout-micro-batch-size; default: an rlvr recipe's); 0: none")
    p.add_argument("--rollout-length", type=int, default=None,
                   help="RLVR: prompt + completion tokens per decoded row (default: "
                        "--seq-length)")
    p.add_argument("--kl-reference", action="store_true",
                   help="RLVR with --beta > 0 (an rlvr recipe's beta > 0 implies it): plan a "
                        "bf16 copy of the start weights")
    p.add_argument("--meta-count", action="store_true",
                   help="also build the model on the meta device and count its parameters")
    a = p.parse_args(argv)
    path = Path(a.config)
    if not path.exists():
        p.error(f"--config {path}: no such file")
    try:  # the recipe as a run reads it (unknown keys, bad values: one line)
        import yaml

        recipe = yaml.safe_load(path.read_text()) or {}
        # a post-training recipe (posttrain.py) plans as its run: its RLVR rollouts included
        post = (recipe.pop("posttrain", None) or {}) if isinstance(recipe, dict) else {}
        run = RunConfig.from_dict(recipe, where=str(path))
    except (ConfigError, yaml.YAMLError) as exc:
        p.error(f"--config {path}: {exc}")
    rlvr = post.get("stage") == "rlvr"
    a.kl_reference = a.kl_reference or (rlvr and float(post.get("beta") or 0) > 0)
    model, par, tr = run.model, run.parallel, run.training

    def pick(flag, default):
        return default if flag is None else flag

    recompute = pick(a.recompute_granularity, model.recompute_granularity)
    c = MemoryPlanConfig(
        tensor_model_parallel_size=pick(a.tensor_model_parallel_size,
                                        par.tensor_model_parallel_size),
        pipeline_model_parallel_size=pick(a.pipeline_model_parallel_size,
                                          par.pipeline_model_parallel_size),
        num_nodes=a.num_nodes, gpus_per_node=a.gpus_per_node,
        micro_batch_size=pick(a.micro_batch_size, tr.micro_batch_size),
        seq_length=pick(a.seq_length, model.seq_length),
        recompute_granularity=None if recompute == "none" else recompute,
        use_distributed_optimizer=pick(a.use_distributed_optimizer,
                                       _recipe_value(path, "use_distributed_optimizer", True)),
        sequence_parallel=pick(a.sequence_parallel, par.sequence_parallel),
        gpu_memory_gb=a.gpu_memory_gb,
        attention_backend=a.attention_backend,
        rollout_rows=a.rollout_rows, kl_reference=a.kl_reference,
    )
    if a.rollout_rows < 0:
        p.error(f"--rollout-rows {a.rollout_rows}: must be >= 0")
    c.rollout_length = a.rollout_length or c.seq_length or 0
    if rlvr and not c.rollout_rows:  # the recipe's rollout_micro_batch_size, else posttrain's
        try:  # default: a DP rank's whole share of the batch
            c.rollout_rows = int(post.get("rollout_micro_batch_size") or 0) or max(
                1, run.training.global_batch_size // c.data_parallel_size)
        except ValueError as exc:
            p.error(str(exc))
    if a.kv_expansion is not None:
        if a.kv_expansion < 1:
            p.error(f"--kv-expansion {a.kv_expansion}: must be >= 1 (gathered rows / tokens)")
        c.kv_expansion, c.kv_expansion_source = a.kv_expansion, "--kv-expansion"
    elif a.metrics_jsonl:
        try:
            c.kv_expansion = kv_expansion_from_metrics(a.metrics_jsonl)
        except (OSError, ValueError) as exc:
            p.error(f"--metrics-jsonl: {exc}")
        c.kv_expansion_source = f"p99 of kv_expansion_max in {a.metrics_jsonl}"
    try:
        result = c.build(model)
    except ValueError as exc:
        p.error(str(exc))
    n = model.num_parameters()
    print(f"model {path.name}: {n:,} parameters without MTP ({n * 2 / GB:.2f} GB in bf16), "
          f"{model.num_parameters(include_mtp=True):,} with MTP")
    if a.meta_count:
        print(f"meta-device build: {meta_parameter_count(model):,} parameters without MTP")
    print(result.table())
    return 0
