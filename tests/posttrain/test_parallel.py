"""SFT, DPO and RLVR under pipeline, tensor and data parallelism (gloo ranks on CPU) give the
single-process losses, DPO metrics and reference log-probs, RLVR rollouts and rewards: the pair
rows travel the pipeline as 2 x micro-batch, the reference pass is sharded over DP and gathered,
the rollouts decode through the pipeline (tokens broadcast from its last stage) and are
generated per DP rank, then summed over DP."""
import pytest

from xlda.testing.distributed import run_distributed


def _job(rank, world, tmp, stage, tp, pp, tag, start=None, save=None):
    from pathlib import Path

    from tests.data.fixtures import write_jsonl
    from tests.posttrain.fixtures import (chat_tokenizer, dpo_records, rlvr_records, sft_records,
                                          tiny_cfg)
    from xlda.posttrain.cli import build_trainer

    tmp = Path(tmp)
    tok = tmp / "tokenizer.json"
    data = tmp / f"{stage}.jsonl"
    if rank == 0 and not data.exists():
        chat_tokenizer(tmp)
        records = {"dpo": lambda: dpo_records(16, 0), "sft": lambda: sft_records(32, 0),
                   "rlvr": lambda: rlvr_records([(a, (3 * a) % 10) for a in range(10)])}
        write_jsonl(data, records[stage]())
    import torch.distributed as dist

    if world > 1 and dist.is_initialized():
        dist.barrier()
    kw = {"dpo": {"ref_cache_dir": str(tmp / tag)},
          "rlvr": {"num_generations": 4, "max_completion_length": 6, "reward_funcs": ["exact"],
                   "beta": 0.04, "num_iterations": 2}}.get(stage, {})
    cfg = tiny_cfg(tmp, tok, data, stage=stage, iters=1 if save else 3, **kw)
    cfg.posttrain.pretrained_checkpoint, cfg.checkpoint.save = start, save
    cfg.model.hidden_dropout = cfg.model.attention_dropout = 0.0
    # the padded vocab (multiple of divisible_by x TP) is 64 rows at TP 1 and 2 alike: the padding
    # rows' logits enter the softmax, so a different padding would change the loss
    cfg.model.make_vocab_size_divisible_by = 32
    cfg.parallel.tensor_model_parallel_size, cfg.parallel.pipeline_model_parallel_size = tp, pp
    tr = build_trainer(cfg, print_fn=lambda *a, **k: None).setup()
    res = tr.train()
    keys = {"dpo": ["dpo loss", "reward_accuracy", "reward_margin"],
            "rlvr": ["grpo loss", "reward", "kl", "completion_length"]}.get(stage, ["lm loss"])
    out = {"hist": [[h[k] for k in keys] for h in res.history]}
    if stage == "dpo":
        out["ref"] = tr.task.pairs.ref_logps.tolist()
    if stage == "rlvr":
        out["ref"] = tr.task.rollouts.samples["tokens"].tolist()  # the last round's rows
    return out




@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "dpo", "rlvr"])
def test_pp2_tp2_dp2_match_one_process(tmp_path, stage):
    import numpy as np

    # one start for every layout (megatron-core seeds each pipeline stage's init differently)
    start = str(tmp_path / "start")
    run_distributed(_job, 1, (str(tmp_path), "sft", 1, 1, "s", None, start))
    ref = run_distributed(_job, 1, (str(tmp_path), stage, 1, 1, "w1", start))[0]
    for tp, pp, tag in ((1, 2, "pp2"), (2, 1, "tp2"), (1, 1, "dp2")):
        for r in run_distributed(_job, 2, (str(tmp_path), stage, tp, pp, tag, start)):
            np.testing.assert_allclose(r["hist"], ref["hist"], rtol=2e-4, atol=2e-5, err_msg=tag)
            if stage == "dpo":
                np.testing.assert_allclose(r["ref"], ref["ref"], rtol=1e-5)
            if stage == "rlvr":  # the same sampled tokens
                assert r["ref"] == ref["ref"], tag
