"""Item 11: a non-finite grad norm stops the run like a non-finite loss (before any save), while
Megatron's skipped iterations (fp16 loss-scale overflow: update not applied, grad norm None) go
on as before."""
from __future__ import annotations

import pytest

from tests.training.test_loop import _cfg
from xlda.training.loop import Trainer, TrainingDivergedError


def _trainer(tmp_path, patch):
    cfg = _cfg(iters=4)
    cfg.checkpoint.save, cfg.checkpoint.save_interval = str(tmp_path / "ckpt"), 1
    trainer = Trainer(cfg, print_fn=lambda *a: None).setup()
    real = trainer.train_step

    def step():
        out = real()
        if trainer.iteration == 2:  # during iteration 3
            out.update(patch)
        return out

    trainer.train_step = step
    return trainer


def test_inf_grad_norm_with_finite_loss_stops_before_saving(tmp_path):
    trainer = _trainer(tmp_path, {"grad_norm": float("inf")})
    with pytest.raises(TrainingDivergedError, match=r"^grad norm is inf at iteration 3; last good "
                                                    r"checkpoint: .*iter_0000002 \(iteration 2\)"):
        trainer.train()
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("iter_*")) == [
        "iter_0000001", "iter_0000002"]


def test_skipped_iteration_is_not_divergence(tmp_path):
    trainer = _trainer(tmp_path, {"grad_norm": None, "skipped": True})
    result = trainer.train()
    assert result.exit_reason == "finished" and result.iteration == 4
