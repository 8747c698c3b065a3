"""WSD schedule values, the annealing switch point, and its survival across a resume."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from xlda.model.recipes import tiny
from xlda.training.batches import TrainData, dp_sample_indices
from xlda.training.config import RunConfig
from xlda.training.wsd import AnnealingSwitch, annealing_probabilities, build_scheduler


class _Opt:
    """OptimizerParamScheduler only touches ``param_groups``."""

    def __init__(self):
        self.param_groups = [{}]


def _cfg(train_iters=10, warmup=2, wsd=4, style="linear"):
    cfg = RunConfig(model=tiny())
    cfg.training.train_iters = train_iters
    cfg.scheduler.lr_warmup_iters = warmup
    cfg.scheduler.lr_wsd_decay_iters = wsd
    cfg.scheduler.lr_wsd_decay_style = style
    cfg.optimizer.lr, cfg.optimizer.min_lr = 1.0, 0.1
    return cfg


def test_wsd_linear_exact_values():
    opt = _Opt()
    sched = build_scheduler(_cfg(), opt)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step(1)
    # warmup 0 -> 1 over 2 steps, stable to step 6 (= 10 - 4), linear to 0.1 at step 10, floor.
    expected = [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.775, 0.55, 0.325, 0.1, 0.1]
    assert lrs == pytest.approx(expected, abs=1e-12)


def test_wsd_cosine_midpoint():
    opt = _Opt()
    sched = build_scheduler(_cfg(style="cosine"), opt)
    sched.step(8)  # halfway through the 4 decay steps: coeff 0.5
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 + 0.5 * 0.9)


def test_default_wsd_is_final_ten_percent():
    cfg = _cfg(train_iters=500, warmup=20, wsd=None)
    assert cfg.wsd_decay_iters() == 50
    assert AnnealingSwitch.from_run_config(cfg).decay_start == 450


def test_switch_fires_once_at_decay_start():
    sw = AnnealingSwitch.from_run_config(_cfg())
    assert sw.decay_start == 6
    assert [sw.should_switch(i) for i in range(10)] == [False] * 6 + [True] + [False] * 3
    assert sw.switched_at == 6


def test_switch_disabled_without_wsd_or_annealing():
    cfg = _cfg()
    cfg.scheduler.lr_decay_style = "cosine"
    assert not any(AnnealingSwitch.from_run_config(cfg).should_switch(i) for i in range(20))
    cfg = _cfg()
    cfg.data.annealing = False
    assert not any(AnnealingSwitch.from_run_config(cfg).should_switch(i) for i in range(20))


class _Seq:
    """A dataset whose sample i is recognisable: tokens all equal to i."""

    def __init__(self, n, base=0):
        self.n, self.base = n, base

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        t = torch.full((4,), self.base + i, dtype=torch.int64)
        return {"tokens": t, "labels": t, "loss_mask": torch.ones(4),
                "position_ids": torch.arange(4), "doc_ids": torch.zeros(4, dtype=torch.int32),
                "lang_ids": torch.zeros(4, dtype=torch.int32)}


def _first_ids(batch):
    return batch["tokens"][:, 0].tolist()


def test_annealing_switch_and_position_survive_resume():
    cfg = _cfg()
    data = TrainData(_Seq(100), _Seq(100, base=1000), micro_batch_size=2)
    sw = AnnealingSwitch.from_run_config(cfg)
    seen = []
    for it in range(8):  # stop after 8 of 10 iterations (2 past the switch)
        if sw.should_switch(it):
            data.switch_to_annealing()
        seen.append(_first_ids(next(data)))
    assert seen[5] == [10, 11] and seen[6] == [1000, 1001] and seen[7] == [1002, 1003]
    state = {"data": data.state_dict(), "annealing": sw.state_dict()}

    data2 = TrainData(_Seq(100), _Seq(100, base=1000), micro_batch_size=2)
    sw2 = AnnealingSwitch.from_run_config(cfg)
    data2.load_state_dict(state["data"])
    sw2.load_state_dict(state["annealing"])
    assert not sw2.should_switch(8)  # already switched: never again
    assert _first_ids(next(data2)) == [1004, 1005]
    assert data2.consumed_samples == 18


@settings(max_examples=50, deadline=None)
@given(mbs=st.integers(1, 4), dp=st.integers(1, 4), steps=st.integers(1, 6),
       start=st.integers(0, 50), n=st.integers(60, 80))
def test_dp_shards_cover_each_sample_once(mbs, dp, steps, start, n):
    got = []
    consumed = start
    for _ in range(steps):
        for r in range(dp):
            got += dp_sample_indices(consumed, mbs, r, dp, n)
        consumed += mbs * dp
    assert got == [(start + i) % n for i in range(steps * mbs * dp)]


def test_annealing_probabilities_triple_multilingual_share():
    p = annealing_probabilities(["en", "ko", "ja", "zh"], [0.7, 0.1, 0.1, 0.1], 3.0, "en")
    assert p == pytest.approx({"en": 0.7 / 1.6, "ko": 0.3 / 1.6, "ja": 0.3 / 1.6, "zh": 0.3 / 1.6})
    with pytest.raises(ValueError, match="must be >= 0"):
        annealing_probabilities(["en"], [1.0], -1.0, "en")
