"""Checkpoint save/load: bit-identical round trip (1 process; 2 processes with TP=2), atomic
"latest", keep_last, and the errors for missing/partial/mismatched checkpoints."""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest
import torch

from xlda.testing.distributed import run_distributed
from xlda.testing.tiny_gpt import TinySetup
from xlda import checkpoint_layout
from xlda.training import checkpointing as ck


def _compare(a: dict, b: dict) -> list[str]:
    bad = sorted(set(a) ^ set(b))
    bad += [k for k in a if k in b and not torch.equal(a[k], b[k])]
    return bad


def _roundtrip_job(rank, world, s: TinySetup, save_dir: str, extended: bool):
    from xlda.testing import tiny_gpt as t

    out = {}
    t.init_parallel(s)
    model, opt, sched = t.build(s)
    t.run_steps(s, model, opt, sched, 0, 2)
    extra = {"consumed_samples": 8, "data": {"epoch": 0, "pos": [1, 2]}, "annealing": False}
    t0 = time.perf_counter()
    ck.save_checkpoint(save_dir, 2, model, opt, sched, extra)
    out["save_s"] = time.perf_counter() - t0
    ref = t.flat_state(model, opt, sched)
    ref_next = t.run_steps(s, model, opt, sched, 2, 3)  # what the resumed run must reproduce

    # A fresh model/optimizer from another seed, with its RNG moved elsewhere.
    t.init_parallel(dataclasses.replace(s, seed=s.seed + 1))
    torch.manual_seed(99)
    model2, opt2, sched2 = t.build(s)
    before = t.flat_state(model2, opt2, sched2)
    t0 = time.perf_counter()
    it, extra2 = ck.load_checkpoint(save_dir, model2, opt2, sched2)
    out["load_s"] = time.perf_counter() - t0
    got = t.flat_state(model2, opt2, sched2)
    out.update(iteration=it, extra=extra2, mismatched=_compare(ref, got),
               differed_before=len(_compare(ref, before)), n_keys=len(ref),
               next_equal=t.run_steps(s, model2, opt2, sched2, 2, 3) == ref_next)
    if not extended:
        return out

    # "latest" is atomic: a crash after iter_0000004 was written but before the rename.
    from xlda.training import checkpoint_publish as pub

    real = pub.write_latest

    def crash(*a, **k):
        raise RuntimeError("simulated crash before rename")

    pub.write_latest = crash
    try:
        ck.save_checkpoint(save_dir, 4, model2, opt2, sched2, {"consumed_samples": 16})
    except RuntimeError as exc:
        out["crash"] = str(exc)
    pub.write_latest = real
    out["latest_after_crash"] = ck.read_latest(save_dir)
    out["iters_after_crash"] = ck.list_iterations(save_dir)
    out["load_after_crash"] = ck.load_checkpoint(save_dir, model2, opt2, sched2)[0]
    # A crash while the shards are being written leaves only a hidden .partial dir.
    real_gather = ck.rng.gather
    ck.rng.gather = crash
    try:
        ck.save_checkpoint(save_dir, 5, model2, opt2, sched2, {})
    except RuntimeError:
        pass
    ck.rng.gather = real_gather
    out["iters_mid_crash"] = ck.list_iterations(save_dir)
    out["partial_left"] = (Path(save_dir) / ".iter_0000005.partial").is_dir()
    # Re-saving an existing iteration replaces it.
    ck.save_checkpoint(save_dir, 4, model2, opt2, sched2, {"consumed_samples": 17})
    out["resaved_extra"] = ck.load_checkpoint(save_dir, model2, opt2, sched2)[1]
    # keep_last=2 keeps the two newest complete iteration dirs.
    for i in (6, 8):
        t0 = time.perf_counter()
        ck.save_checkpoint(save_dir, i, model2, opt2, sched2, {}, keep_last=2)
        out["later_save_s"] = time.perf_counter() - t0
    out["iters_keep_last"] = ck.list_iterations(save_dir)
    out["latest_keep_last"] = ck.read_latest(save_dir)
    return out


def _check_roundtrip(r):
    assert r["iteration"] == 2
    assert r["extra"] == {"consumed_samples": 8, "data": {"epoch": 0, "pos": [1, 2]},
                          "annealing": False}
    assert r["mismatched"] == []
    assert r["differed_before"] > 0  # the fresh model really was different
    assert r["n_keys"] > 20  # params, Adam moments, lr, scheduler, all RNG streams
    assert r["next_equal"]  # the step after the load is the step after the save


def test_roundtrip_one_process(tmp_path):
    (r,) = run_distributed(_roundtrip_job, 1, (TinySetup(), str(tmp_path), True))
    _check_roundtrip(r)
    assert "simulated crash" in r["crash"]
    assert r["iters_after_crash"] == [2, 4] and r["latest_after_crash"] == 2
    assert r["load_after_crash"] == 2
    assert r["iters_mid_crash"] == [2, 4] and r["partial_left"]
    assert r["resaved_extra"] == {"consumed_samples": 17}
    assert r["iters_keep_last"] == [6, 8] and r["latest_keep_last"] == 8
    print(f"first save {r['save_s']:.2f}s, later save {r['later_save_s']:.2f}s, "
          f"load {r['load_s']:.2f}s")


def test_roundtrip_tp2(tmp_path):
    rs = run_distributed(_roundtrip_job, 2, (TinySetup(tp=2), str(tmp_path), False))
    for r in rs:
        _check_roundtrip(r)
    state = torch.load(tmp_path / "iter_0000002" / ck.STATE_FILE, weights_only=False)
    assert state["layout"] == {"world_size": 2, "tp": 2, "pp": 1, "dp": 1}
    # Each rank's own tracker state is stored: the TP streams differ between the ranks.
    t0, t1 = (s["tracker"]["model-parallel-rng"] for s in state["rng_states"])
    assert not torch.equal(t0, t1)


# -- errors (no processes needed) -------------------------------------------------------------

def _fake_complete(d: Path, iteration: int) -> Path:
    p = ck.iter_dir(d, iteration)
    p.mkdir(parents=True)
    for name in ck._REQUIRED:
        (p / name).write_bytes(b"")
    (d / ck.LATEST_FILE).write_text(f"{iteration}\n")
    return p


def test_missing_dir_is_fresh_start_unless_required(tmp_path):
    assert ck.load_checkpoint(tmp_path / "nope", [], None, None) is None
    with pytest.raises(ck.CheckpointError, match="does not exist"):
        ck.load_checkpoint(tmp_path / "nope", [], None, None, required=True)
    assert ck.load_checkpoint(tmp_path, [], None, None) is None
    ck.iter_dir(tmp_path, 5).mkdir()
    with pytest.raises(ck.CheckpointError, match=r"no latest_checkpointed_iteration.txt.*\[5\]"):
        ck.load_checkpoint(tmp_path, [], None, None, required=True)


def test_partial_checkpoint_names_missing_files(tmp_path):
    p = _fake_complete(tmp_path, 3)
    (p / "metadata.json").unlink()
    (p / ck.STATE_FILE).unlink()
    with pytest.raises(ck.CheckpointError, match=r"incomplete \(missing metadata.json, xlda_state"):
        ck.load_checkpoint(tmp_path, [], None, None)
    with pytest.raises(ck.CheckpointError, match="iteration 7 requested"):
        ck.load_checkpoint(tmp_path, [], None, None, iteration=7)


def test_corrupted_state_file(tmp_path):
    p = _fake_complete(tmp_path, 3)
    (p / ck.STATE_FILE).write_bytes(b"not a torch file")
    with pytest.raises(ck.CheckpointError, match="xlda_state.pt is unreadable"):
        ck.load_checkpoint(tmp_path, [], None, None)


def test_bad_latest_file(tmp_path):
    (tmp_path / ck.LATEST_FILE).write_text("iter_3")
    with pytest.raises(ck.CheckpointError, match="expected an iteration number"):
        ck.load_checkpoint(tmp_path, [], None, None)


@dataclasses.dataclass
class _Cfg:
    model: dict

    def to_dict(self):
        return {"model": self.model, "training": {"seed": 1}}


def test_model_config_mismatch_names_fields(tmp_path):
    import yaml

    p = _fake_complete(tmp_path, 3)
    saved = {"num_layers": 2, "hidden_size": 128, "attention_backend": "sdpa"}
    (p / ck.RUN_CONFIG_FILE).write_text(yaml.safe_dump({"model": saved}))
    now = {"num_layers": 4, "hidden_size": 128, "attention_backend": "flex", "swiglu": True}
    with pytest.raises(ck.CheckpointError) as e:
        ck.load_checkpoint(tmp_path, [], None, None, run_config=_Cfg(now))
    msg = str(e.value)
    assert "num_layers: checkpoint=2 vs now=4" in msg
    assert "swiglu: checkpoint='<absent>' vs now=True" in msg
    assert "attention_backend" not in msg  # execution-only: may change on resume
    assert ck.model_config_diff(saved, dict(saved, attention_backend="te")) == {}


def test_latest_written_atomically(tmp_path, monkeypatch):
    checkpoint_layout.write_latest(tmp_path, 5)
    assert ck.read_latest(tmp_path) == 5

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        checkpoint_layout.write_latest(tmp_path, 9)
    assert ck.read_latest(tmp_path) == 5


def test_common_file_required_only_for_the_legacy_format(tmp_path):
    # megatron-core <= 0.18 records "common_backend" in metadata.json and writes common.pt;
    # 0.19 keeps the common state inside the torch_dist files (no common.pt).
    legacy = ck.iter_dir(tmp_path, 1)
    legacy.mkdir()
    (legacy / "metadata.json").write_text('{"sharded_backend": "torch_dist", '
                                          '"sharded_backend_version": 1, "common_backend": "torch"}')
    (legacy / ".metadata").write_bytes(b"")
    (legacy / ck.STATE_FILE).write_bytes(b"")
    with pytest.raises(ck.CheckpointError, match=r"incomplete \(missing common.pt\)"):
        ck.check_complete(legacy)
    (legacy / "common.pt").write_bytes(b"")
    ck.check_complete(legacy)

    new = ck.iter_dir(tmp_path, 2)
    new.mkdir()
    (new / "metadata.json").write_text('{"sharded_backend": "torch_dist", '
                                       '"sharded_backend_version": 1}')
    (new / ".metadata").write_bytes(b"")
    (new / ck.STATE_FILE).write_bytes(b"")
    ck.check_complete(new)


def test_new_format_checkpoint_on_legacy_megatron_core_says_which_version(tmp_path):
    from megatron.core import dist_checkpointing

    if not ck.installed_needs_common_file(dist_checkpointing):
        pytest.skip("the installed megatron-core reads common-state-in-torch_dist checkpoints")
    p = ck.iter_dir(tmp_path, 3)
    p.mkdir()
    (p / "metadata.json").write_text('{"sharded_backend": "torch_dist", "sharded_backend_version": 1}')
    (p / ".metadata").write_bytes(b"")
    torch.save({"iteration": 3}, p / ck.STATE_FILE)
    (tmp_path / ck.LATEST_FILE).write_text("3\n")
    with pytest.raises(ck.CheckpointError, match=r"saved by megatron-core >= 0.19.*Load it with"):
        ck.load_checkpoint(tmp_path, [], None, None)
