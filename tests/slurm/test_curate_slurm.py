"""tools/curate.py --executor slurm on the real local SLURM cluster: datatrove's
SlurmPipelineExecutor submits one job array per stage, chained by dependencies; the result
must equal the local executor's on the same input."""
from __future__ import annotations

import gzip
import itertools
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.slurm.conftest import REPO

pytest.importorskip("datatrove")
pytestmark = pytest.mark.slurm


def _inputs(corpus: Path, d: Path) -> list[Path]:
    from tests.curate.planted import CLEAN, boilerplate

    files = []
    for L in ("en", "ko"):
        with gzip.open(corpus / f"libreoffice_help.{L}.jsonl.gz", "rt", encoding="utf-8") as f:
            rows = [json.loads(x) for x in itertools.islice(f, 15)]
        rows += [{"id": f"clean/{L}", "text": CLEAN[L]}, {"id": f"copy/{L}", "text": CLEAN[L]}]
        rows += [{"id": f"bp/{L}/{k}", "text": t} for k, t in boilerplate(CLEAN[L]).items()]
        p = d / f"{L}.jsonl.gz"
        with gzip.open(p, "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        files.append(p)
    return files


def _configs(d: Path) -> Path:
    # Two MinHash buckets instead of 14: the same stages with fewer array tasks on 2 cores.
    from xlda.curate.config import CONFIG_DIR

    out = d / "configs"
    out.mkdir()
    for L in ("en", "ko"):
        cfg = yaml.safe_load((CONFIG_DIR / f"{L}.yaml").read_text(encoding="utf-8"))
        cfg["minhash"]["num_buckets"] = 2
        (out / f"{L}.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return out


def test_slurm_executor_matches_local(cluster, corpus, tmp_path):
    from tests.curate.planted import read_output
    from xlda.curate.config import CurateConfig

    files, cfgdir = _inputs(corpus, tmp_path), _configs(tmp_path)
    partition = cluster.run("sinfo", "-h", "-o", "%P").split()[0].rstrip("*")
    out = tmp_path / "slurm_out"
    cmd = [sys.executable, str(REPO / "tools" / "curate.py"), "--input", *map(str, files),
           "--output-dir", str(out), "--languages", "en,ko", "--language-config-dir", str(cfgdir),
           "--executor", "slurm", "--partition", partition,
           "--time", "00:10:00", "--mem-per-cpu-gb", "1", "--tasks-per-job", "8"]
    r = subprocess.run(cmd, env=dict(cluster.env, PYTHONPATH=str(REPO)), capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "SLURM jobs submitted" in r.stdout
    jobs = sorted({int(x) for x in re.findall(r"id=(\d+)", r.stderr)})
    cluster.jobs.extend(jobs)
    assert len(jobs) >= 8  # one array per stage: filter .. publish
    deadline = time.monotonic() + 240
    while not (out / "manifest.json").exists() and time.monotonic() < deadline:
        time.sleep(1)
    if not (out / "manifest.json").exists():
        logs = sorted((out / ".work" / "slurm_logs").rglob("*.out"))
        tail = "\n".join(p.read_text(errors="replace")[-800:] for p in logs[-3:])
        pytest.fail(f"no manifest after 240 s; queue:\n{cluster.run('squeue', check=False)}\n{tail}")
    m = json.loads((out / "manifest.json").read_text())
    for job in jobs[-1:]:
        assert cluster.wait_done(job, 60)["JobState"] == "COMPLETED"
    ref = CurateConfig(inputs=[str(f) for f in files], output_dir=str(tmp_path / "local_out"),
                       languages=("en", "ko"), language_config_dir=str(cfgdir),
                       workers=1).build().run()
    assert m["languages"] == ref["languages"]
    for L in ("en", "ko"):
        got = read_output(out / L)
        assert got == read_output(tmp_path / "local_out" / L) and got
        assert len({"clean/" + L, "copy/" + L} & {x["id"] for x in got}) == 1  # exact copies
        assert m["languages"][L]["dropped"]["exact_duplicate"] >= 1
        assert m["languages"][L]["dropped"]["gopher_quality:gopher_short_doc"] >= 1
    # Every stage ran as SLURM array jobs, each task marked complete for a rerun to skip.
    stages = ["filter", "exact_sigs", "exact_find", "minhash_sigs", "minhash_buckets",
              "minhash_cluster", "final", "publish"]
    for s in stages:
        assert (out / ".work" / "logs" / s / "launch_script.slurm").exists(), s
        assert list((out / ".work" / "logs" / s / "completions").iterdir()), s
