"""Damaged and crafted checkpoint files (issue 11 items 11, 12, 20, 21): a real checkpoint of a
tiny megatron-core GPT is saved once, then copies of it are corrupted, truncated or replaced by
hostile pickles, and loaded. Every failure is a CheckpointError naming the file; nothing in a
file whose checksum does not match is unpickled; xlda_state.pt is never unpickled beyond
tensors and plain values."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from xlda.testing.distributed import run_distributed
from xlda.testing.tiny_gpt import TinySetup
from xlda.training import checkpoint_integrity as integrity
from xlda.training import checkpointing as ck
from xlda.training.checkpoint_state import decode


class _Hostile:
    """Unpickling this creates ``path``: the stand-in for running an attacker's code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _largest_shard(d: Path) -> Path:
    return max(d.glob("*.distcp"), key=lambda p: p.stat().st_size)


def _flip_64_bytes(p: Path) -> None:
    data = bytearray(p.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
    p.write_bytes(bytes(data))


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _rehash(d: Path) -> None:
    """An attacker who rewrites a file and checksums.json with it (verification then passes)."""
    (d / integrity.MANIFEST_FILE).unlink()
    integrity.write_manifest(d)


def _damage(d: Path, how: str, marker: Path) -> None:
    if how == "flip_shard":
        _flip_64_bytes(_largest_shard(d))
    elif how == "truncate_shard":
        _truncate(_largest_shard(d))
    elif how == "truncate_metadata":
        _truncate(d / ".metadata")
    elif how == "hostile_metadata":  # a crafted .metadata, checksums left as recorded
        (d / ".metadata").write_bytes(__import__("pickle").dumps(_Hostile(str(marker))))
    elif how == "hostile_state":  # a crafted xlda_state.pt *with* matching checksums
        torch.save({"iteration": 2, "x": _Hostile(str(marker))}, d / ck.STATE_FILE)
        _rehash(d)
    elif how == "old_state_format":  # xlda_state.pt as earlier xlda wrote it (numpy arrays)
        state = decode(torch.load(d / ck.STATE_FILE, weights_only=True))
        assert isinstance(state["rng_states"][0]["numpy"][1], np.ndarray)
        torch.save(state, d / ck.STATE_FILE)
        _rehash(d)
    elif how != "none":
        raise ValueError(how)


CASES = [  # (damage, remove checksums.json first, verify)
    ("none", False, True), ("flip_shard", False, True), ("flip_shard", False, False),
    ("truncate_shard", False, True), ("truncate_shard", False, False),
    ("truncate_shard", True, True), ("truncate_metadata", False, True),
    ("truncate_metadata", True, True), ("hostile_metadata", False, True),
    ("hostile_state", False, True), ("old_state_format", False, True),
]


def _job(rank, world, root: str):
    from xlda.testing import tiny_gpt as t

    root = Path(root)
    s = TinySetup(num_layers=2)
    t.init_parallel(s)
    model, opt, sched = t.build(s)
    t.run_steps(s, model, opt, sched, 0, 2)
    ck.save_checkpoint(root / "good", 2, model, opt, sched, {"consumed_samples": 8})
    out = {}
    for how, drop_manifest, verify in CASES:
        name = f"{how}-{'nomanifest' if drop_manifest else 'manifest'}-{'verify' if verify else 'noverify'}"
        d, marker = root / name, root / f"{name}.pwned"
        shutil.copytree(root / "good", d)
        if drop_manifest:
            (d / "iter_0000002" / integrity.MANIFEST_FILE).unlink()
        _damage(d / "iter_0000002", how, marker)
        try:
            ck.load_checkpoint(d, model, opt, sched, verify=verify)
            msg = "loaded"
        except ck.CheckpointError as exc:
            msg = str(exc)
        out[name] = (msg, marker.exists())
    # Item 10's backstop: weights that became NaN are not saved, whatever the loop checked.
    with torch.no_grad():
        next(model[0].parameters()).view(-1)[0] = float("nan")
    try:
        ck.save_checkpoint(root / "good", 3, model, opt, sched, {})
        out["nan_save"] = "saved"
    except ck.CheckpointError as exc:
        out["nan_save"] = str(exc)
    out["after_nan"] = sorted(p.name for p in (root / "good").iterdir())
    return out


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckfiles")
    (r,) = run_distributed(_job, 1, (str(root),))
    return root, r


def test_intact_checkpoint_loads_with_checksums(results):
    root, r = results
    assert r["none-manifest-verify"] == ("loaded", False)
    files = json.loads((root / "good" / "iter_0000002" / "checksums.json").read_text())["files"]
    assert {".metadata", "metadata.json", "xlda_state.pt"} <= set(files)
    assert "run_config.yaml" not in files  # (no run config given here)
    assert any(n.endswith(".distcp") for n in files)


def test_flipped_shard_bytes_are_refused_naming_the_file(results):
    """Item 11: 64 flipped bytes used to load silently (the run then went on with loss 3.6e28)."""
    root, r = results
    msg, _ = r["flip_shard-manifest-verify"]
    assert "failed verification, nothing was loaded" in msg
    assert re.search(r"__0_\d\.distcp: sha256 differs from the one recorded", msg), msg
    assert "--no-verify-checkpoint" in msg
    # the escape hatch really skips the check (the flipped values are then loaded as they are)
    assert r["flip_shard-manifest-noverify"][0] == "loaded"


@pytest.mark.parametrize("manifest", ["manifest-verify", "manifest-noverify", "nomanifest-verify"])
def test_truncated_shard_names_the_file(results, manifest):
    """Item 12: a truncated shard gave a raw torch CheckpointException (a BaseException)."""
    root, r = results
    msg, _ = r[f"truncate_shard-{manifest}"]
    assert re.search(r"iter_0000002/__0_\d\.distcp: \d+ bytes, (recorded|but .metadata records)",
                     msg), msg
    assert "truncated" in msg and "earlier iteration" in msg


@pytest.mark.parametrize("manifest", ["manifest-verify", "nomanifest-verify"])
def test_truncated_metadata_names_the_file(results, manifest):
    root, r = results
    msg, _ = r[f"truncate_metadata-{manifest}"]
    assert re.search(r"iter_0000002/\.metadata: (\d+ bytes, recorded|unreadable)", msg), msg


def test_crafted_metadata_is_refused_before_unpickling(results):
    """Item 21: torch DCP unpickles .metadata; a file that does not match its recorded checksum
    is refused before that (the marker file would be created by the unpickling)."""
    root, r = results
    msg, pwned = r["hostile_metadata-manifest-verify"]
    assert not pwned
    assert "failed verification" in msg and "/.metadata: " in msg


def test_crafted_state_file_is_not_unpickled(results):
    """Item 20: xlda_state.pt was read with torch.load(weights_only=False): a crafted file ran
    code on --load even with matching checksums. Now it is refused, unexecuted."""
    root, r = results
    msg, pwned = r["hostile_state-manifest-verify"]
    assert not pwned
    assert "xlda_state.pt holds pickled objects outside the allowed types" in msg
    assert "not unpickled" in msg


def test_state_file_of_earlier_versions_still_loads(results):
    """Earlier xlda pickled numpy's RNG state as an ndarray: still loaded (array reconstruction
    is on the allow-list), without weights_only=False."""
    root, r = results
    assert r["old_state_format-manifest-verify"] == ("loaded", False)


def test_nan_weights_are_never_saved(results):
    root, r = results
    assert r["nan_save"].startswith("refusing to save iteration 3: non-finite (NaN/inf) values")
    assert r["nan_save"].endswith(f"the last finite checkpoint is {root / 'good' / 'iter_0000002'}")
    assert r["after_nan"] == ["iter_0000002", "latest_checkpointed_iteration.txt"]


def test_no_space_detection():
    """The shapes a full disk takes in torch's writers (item 14's real tmpfs test may skip)."""
    import errno

    from torch.distributed.checkpoint.api import CheckpointException

    here = Path(".")
    assert ck.no_space(OSError(errno.ENOSPC, "No space left on device"), here)
    wrapped = RuntimeError("Worker failure")
    wrapped.__cause__ = OSError(errno.ENOSPC, "x")
    assert ck.no_space(wrapped, here)
    assert ck.no_space(CheckpointException("save", {0: (OSError(errno.ENOSPC, "x"), None)}), here)
    assert ck.root_cause(CheckpointException("load", {0: (EOFError("Ran out of input"), None)})) \
        == "EOFError: Ran out of input"
    assert not ck.no_space(RuntimeError("unexpected pos 704 vs 598"), here)  # disk not full


def test_no_verify_flag_maps_to_config():
    from tests.fault.runs import REPO
    from xlda.cli.pretrain import resolve

    base = ["--config", str(REPO / "examples/trillion7b/tiny.yaml"), "--mock-data"]
    assert resolve(base)[0].checkpoint.verify_checkpoint is True
    assert resolve(base + ["--no-verify-checkpoint"])[0].checkpoint.verify_checkpoint is False


def test_converter_refuses_a_modified_checkpoint_before_reading_it(tmp_path):
    """Item 21 for ``convert.py --from mcore``: the same recorded checksums guard its input."""
    from xlda.checkpoint_conversion.arch import ConversionError
    from xlda.checkpoint_conversion.mcore_io import resolve_iteration

    d = ck.iter_dir(tmp_path, 4)
    d.mkdir()
    (d / "metadata.json").write_text('{"sharded_backend": "torch_dist"}')
    (d / ".metadata").write_bytes(b"recorded bytes")
    integrity.write_manifest(d)
    assert resolve_iteration(d) == (d, 4)
    (d / ".metadata").write_bytes(b"modified bytes")
    with pytest.raises(ConversionError, match=r"iter_0000004 failed verification, nothing was "
                                              r"read: .*/\.metadata: sha256 differs"):
        resolve_iteration(d)
