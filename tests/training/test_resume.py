"""Resume equivalence through the real trainer (xlda.training.loop.Trainer): N iterations straight
give the same losses as N/2, save, a fresh process state, load, N/2 — bit-identical on CPU, with
dropout on (so every RNG stream must be restored) and the WSD annealing data switch happening
before the save (so the data/annealing state must be restored too)."""
from __future__ import annotations

import os
import signal

import pytest

from xlda.testing.distributed import run_distributed

ITERS, HALF = 6, 3


def _run_config(tp: int, pp: int, **checkpoint):
    from xlda.model.recipes import tiny
    from xlda.training.config import (CheckpointConfig, DataConfig,
                                      ParallelConfig, RunConfig, SchedulerConfig, TrainingConfig)

    exit_interval = checkpoint.pop("exit_interval", None)
    return RunConfig(
        model=tiny(seq_length=32, num_layers=2 * pp, hidden_size=32, num_attention_heads=4,
                   num_query_groups=2, ffn_hidden_size=64, hidden_dropout=0.1,
                   attention_dropout=0.1),
        data=DataConfig(mock=True, seq_length=32, xlda_beta={"en": 1, "ko": 1, "ja": 1, "zh": 1}),
        parallel=ParallelConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp),
        # WSD decay (and the switch to the annealing blend) starts at iteration 2 < HALF.
        scheduler=SchedulerConfig(lr_warmup_iters=1, lr_wsd_decay_iters=4),
        training=TrainingConfig(micro_batch_size=1, global_batch_size=4, train_iters=ITERS,
                                exit_interval=exit_interval),
        checkpoint=CheckpointConfig(**checkpoint),
    )


def _resume_job(rank, world, tp, pp, save_dir, via_signal):
    from xlda.training.loop import Trainer

    class SignalAtHalf(Trainer):
        """Rank ``world - 1`` alone gets SIGUSR1 during iteration HALF: every rank must stop."""

        def train_step(self):
            out = super().train_step()
            if self.iteration + 1 == HALF and self.rank == world - 1:
                os.kill(os.getpid(), signal.SIGUSR1)
            return out

    quiet = lambda *a, **k: None  # noqa: E731
    straight = Trainer(_run_config(tp, pp), print_fn=quiet).setup().train()
    if via_signal:
        first = SignalAtHalf(_run_config(tp, pp, save=save_dir), print_fn=quiet).setup().train()
    else:
        first = Trainer(_run_config(tp, pp, save=save_dir, exit_interval=HALF),
                        print_fn=quiet).setup().train()
    resumed = Trainer(_run_config(tp, pp, save=save_dir, load=save_dir), print_fn=quiet)
    resumed.setup()
    start = resumed.iteration
    second = resumed.train()

    def pick(r, key):
        return [h[key] for h in r.history]

    return {
        "straight": pick(straight, "lm loss"), "first": pick(first, "lm loss"),
        "second": pick(second, "lm loss"), "exit": first.exit_reason, "start": start,
        "lr": (pick(straight, "lr"), pick(first, "lr") + pick(second, "lr")),
        "consumed": (pick(straight, "consumed_samples"),
                     pick(first, "consumed_samples") + pick(second, "consumed_samples")),
        "annealing": (pick(straight, "annealing"),
                      pick(first, "annealing") + pick(second, "annealing")),
    }


def _check(results, exit_reason):
    for r in results:
        assert r["exit"] == exit_reason and r["start"] == HALF
        assert len(r["first"]) == HALF and len(r["second"]) == ITERS - HALF
        assert r["first"] + r["second"] == r["straight"]  # exact, not approximate
        assert r["lr"][0] == r["lr"][1]
        assert r["consumed"][0] == r["consumed"][1] == [4 * i for i in range(1, ITERS + 1)]
        assert r["annealing"][0] == r["annealing"][1]
        assert r["annealing"][0][0] == 0 and r["annealing"][0][-1] == 1
    assert all(r["straight"] == results[0]["straight"] for r in results)


def test_resume_tp1(tmp_path):
    _check(run_distributed(_resume_job, 1, (1, 1, str(tmp_path), False)),
           "exit_interval")


def test_resume_tp2_after_signal_on_one_rank(tmp_path):
    _check(run_distributed(_resume_job, 2, (2, 1, str(tmp_path), True)), "signal")


@pytest.mark.slow
def test_resume_tp2_pp2(tmp_path):
    _check(run_distributed(_resume_job, 4, (2, 2, str(tmp_path), False)),
           "exit_interval")
