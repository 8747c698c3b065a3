"""benchmarks/gpu_check.py end to end on the CPU (--dry-run): every row but the CUDA calls."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~30 s: two tiny training runs in subprocesses
def test_gpu_check_dry_run_prints_the_table(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rows = {r[0]: r for r in json.loads((tmp_path / "summary.json").read_text())["rows"]}
    assert rows["oracle flex"][1] == rows["oracle thd (torch reference)"][1] == "PASS"
    assert rows["train flex (thd on CPU)"][1] == rows["train causal-sdpa"][1] == "PASS"
    assert rows["flex / causal sdpa"][2].startswith("tokens/s ratio ")
    assert rows["oracle te"][1] == "SKIP" and "Transformer Engine not importable" in rows["oracle te"][2]
    assert "fusions on: none" in rows["start-up (flex run)"][2]
    assert (tmp_path / "table.txt").read_text().startswith("check")
