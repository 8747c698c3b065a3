"""TP=2, PP=2 and DP=2 (2 gloo processes each) train to the same losses as TP=PP=DP=1 on the same
global batches, through the real trainer. All layouts start from the same weights: the reference
run saves its initial model and every layout loads it with --finetune (weights only), which also
exercises dist_checkpointing's resharding TP1->TP2 and PP1->PP2."""
from __future__ import annotations

import pytest

from xlda.testing.distributed import run_distributed

ITERS = 3
LAYOUTS = {"tp2": (2, 1), "pp2": (1, 2), "dp2": (1, 1)}  # (tp, pp) on 2 ranks; dp = 2 / (tp*pp)


def _run_config(tp: int, pp: int, **checkpoint):
    from xlda.model.recipes import tiny
    from xlda.training.config import (CheckpointConfig, DataConfig,
                                      ParallelConfig, RunConfig, SchedulerConfig, TrainingConfig)

    return RunConfig(
        model=tiny(seq_length=32, num_layers=2, hidden_size=32, num_attention_heads=4,
                   num_query_groups=2, ffn_hidden_size=64),  # no dropout: layouts draw differently
        data=DataConfig(mock=True, seq_length=32, xlda_beta={"en": 1, "ko": 1, "ja": 1, "zh": 1}),
        parallel=ParallelConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp),
        scheduler=SchedulerConfig(lr_warmup_iters=1),
        training=TrainingConfig(micro_batch_size=1, global_batch_size=4, train_iters=ITERS),
        checkpoint=CheckpointConfig(**checkpoint),
    )


def _losses(result):
    return [h["lm loss"] for h in result.history]


def _reference_job(rank, world, init_dir):
    from xlda.training.loop import Trainer

    t = Trainer(_run_config(1, 1, save=init_dir), print_fn=lambda *a, **k: None).setup()
    t.save()  # iteration 0: the initial weights every layout starts from
    t.cfg.checkpoint.save = None
    return _losses(t.train())


def _layouts_job(rank, world, init_dir, names):
    from xlda.training.loop import Trainer

    out = {}
    for name in names:
        tp, pp = LAYOUTS[name]
        cfg = _run_config(tp, pp, load=init_dir, finetune=True)
        t = Trainer(cfg, print_fn=lambda *a, **k: None).setup()
        out[name] = {"losses": _losses(t.train()), "dp": t.dp_size}
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    init_dir = str(tmp_path_factory.mktemp("init"))
    (losses,) = run_distributed(_reference_job, 1, (init_dir,))
    return init_dir, losses


def _check(reference, names):
    init_dir, ref = reference
    r0, r1 = run_distributed(_layouts_job, 2, (init_dir, names))
    assert r0 == r1  # the reported (all-reduced) loss is the same on every rank
    assert len(ref) == ITERS and ref[0] != ref[-1]
    for name in names:
        got = r0[name]
        assert got["dp"] == 2 // (LAYOUTS[name][0] * LAYOUTS[name][1])
        assert got["losses"] == pytest.approx(ref, rel=1e-5, abs=0), name


def test_tp2_matches_single_process(reference):
    _check(reference, ["tp2"])


@pytest.mark.slow
def test_pp2_and_dp2_match_single_process(reference):
    _check(reference, ["pp2", "dp2"])
