"""Crash safety of tools/preprocess_data.py: real signals on a real subprocess, a real full disk
(small tmpfs) and an injected ENOSPC where the moment matters (issue 11, items 4-8)."""
import errno
import json
import os
import signal
import types

import pytest

from tests.data.fixtures import word_level_tokenizer, write_jsonl
from tests.data.test_preprocess import DOCS, WORDS, cli, outputs
from tests.fault.harness import small_tmpfs, spawn, wait_for  # noqa: F401 (fixture)
from xlda.data import outputs as outputs_mod

# The real CLI, with each chunk slowed down so a signal lands mid-run deterministically.
SLOW_CLI = """
import sys, time
from xlda.data import preprocess as pp
real = pp._Worker.process
def slow(self, chunk):
    time.sleep(0.05)
    return real(self, chunk)
pp._Worker.process = slow
from xlda.cli.preprocess import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def wl(tmp_path):
    return word_level_tokenizer(tmp_path, WORDS)


def _args(tok, src, prefix, *extra):
    return ["--input", str(src), "--output-prefix", str(prefix), "--tokenizer-type", "HuggingFaceTokenizer",
            "--tokenizer-model", str(tok), "--log-interval", "0", *extra]


def _temps(d):
    return sorted(p.name for p in d.iterdir() if ".tmp-" in p.name)


def _start_and_wait_for_temps(wl, src, out, *extra):
    proc = spawn(SLOW_CLI, *_args(wl, src, out / "x", *extra))
    wait_for(lambda: any(".bin.tmp-" in p.name for p in out.iterdir()), proc, what="temp outputs")
    return proc


def test_kill9_debris_is_removed_by_the_rerun(tmp_path, wl, capsys):
    src = write_jsonl(tmp_path / "a.jsonl", DOCS * 2000)
    out = tmp_path / "out"
    out.mkdir()
    proc = _start_and_wait_for_temps(wl, src, out)
    proc.kill()
    proc.wait()
    debris = _temps(out)
    assert debris and all(n.endswith(f".tmp-{proc.pid}") for n in debris)
    assert [n for n in outputs(out) if ".tmp-" not in n] == [] and not (out / "x.manifest.json").exists()
    # The rerun (the killed run's lock died with it) removes the debris and completes.
    assert cli(wl, [src], out / "x") == 0
    err = capsys.readouterr().err
    assert f"removed {out / debris[0]} (left by an interrupted run)" in err
    assert _temps(out) == [] and not (out / "x.lock").exists()
    m = json.loads((out / "x.manifest.json").read_text())
    assert {k: v["documents"] for k, v in m["languages"].items()} == {"en": 4000, "ko": 2000, "ja": 2000}


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_sigterm_prints_a_message_and_removes_partial_outputs(tmp_path, wl, workers):
    src = write_jsonl(tmp_path / "a.jsonl", DOCS * 2000)
    out = tmp_path / "out"
    out.mkdir()
    proc = _start_and_wait_for_temps(wl, src, out, "--workers", str(workers))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert "terminated (SIGTERM): partial outputs removed" in err
    assert list(out.iterdir()) == []


def test_a_second_run_on_a_locked_prefix_is_refused(tmp_path, wl, capsys):
    src = write_jsonl(tmp_path / "a.jsonl", DOCS)
    with outputs_mod.PrefixLock(str(tmp_path / "x")):
        assert cli(wl, [src], tmp_path / "x") == 1
    assert "x.lock is locked: another run is writing this --output-prefix" in capsys.readouterr().err
    assert cli(wl, [src], tmp_path / "x") == 0


def test_disk_full_on_a_real_tmpfs_names_the_path(tmp_path, wl, small_tmpfs, capsys):
    mnt = small_tmpfs("128k")
    src = write_jsonl(tmp_path / "a.jsonl", DOCS * 5000)
    assert cli(wl, [src], mnt / "x") == 1
    err = capsys.readouterr().err
    assert "no space left on device" in err and f"{mnt}/x_" in err and "choose another --output-prefix" in err
    assert list(mnt.iterdir()) == []  # no temps, no lock, nothing that looks complete


def test_disk_full_while_writing_the_manifest_keeps_the_previous_set(tmp_path, wl, monkeypatch, capsys):
    out = tmp_path / "out"
    assert cli(wl, [write_jsonl(tmp_path / "a.jsonl", DOCS[:1])], out / "x") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs_mod, "json", types.SimpleNamespace(dump=full, loads=json.loads))
    assert cli(wl, [write_jsonl(tmp_path / "b.jsonl", DOCS)], out / "x") == 1
    err = capsys.readouterr().err
    assert f"{out / 'x.manifest.json'}.tmp-{os.getpid()}: no space left on device" in err
    # Neither the new languages' data nor a 0-byte manifest: the previous complete set, unchanged.
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.slow  # two subprocesses; the reject itself is tested in tests/data/test_preprocess.py
def test_one_huge_line_is_rejected_without_the_memory(tmp_path, wl):
    """A 30 MB document (default --max-doc-chars 4e6) costs about its own size, not gigabytes."""
    small = write_jsonl(tmp_path / "small.jsonl", DOCS)
    big = write_jsonl(tmp_path / "big.jsonl", DOCS + [{"text": "hello " * 5_000_000, "lang": "en"}])
    peaks = {}
    for name, src in (("small", small), ("big", big)):
        proc = spawn("import sys\nfrom xlda.cli.preprocess import main\nsys.exit(main(sys.argv[1:]))",
                     *_args(wl, src, tmp_path / name / "x"))
        _, status, usage = os.wait4(proc.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read()
        peaks[name] = usage.ru_maxrss / 1024  # MiB
    m = json.loads((tmp_path / "big" / "x.manifest.json").read_text())
    assert m["rejected"]["document_too_long"] == 1 and m["languages"]["en"]["documents"] == 2
    print(f"peak RSS: small input {peaks['small']:.0f} MiB, with a 30 MB line {peaks['big']:.0f} MiB")
    assert peaks["big"] - peaks["small"] < 200


def test_merge_disk_full_leaves_nothing(tmp_path, wl, small_tmpfs, capsys):
    from xlda.cli.merge_datasets import main as merge

    for i in range(2):
        assert cli(wl, [write_jsonl(tmp_path / f"s{i}.jsonl", DOCS * 2500)], tmp_path / "sh" / f"s{i}") == 0
    mnt = small_tmpfs("128k")
    capsys.readouterr()
    assert merge(["--input", str(tmp_path / "sh"), "--output-prefix", str(mnt / "x")]) == 1
    err = capsys.readouterr().err
    assert "no space left on device" in err and f"{mnt}/x_" in err
    assert list(mnt.iterdir()) == []
