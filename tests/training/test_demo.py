"""The README demo. End to end is slow (minutes); the summary arithmetic is checked fast."""
import json
import subprocess
import sys

import pytest

from xlda.demo import summarize
from xlda.paths import REPO_ROOT


def test_summary_of_a_hand_written_metrics_file(tmp_path):
    rows = [{"kind": "train", "iteration": i, "lm loss": 10.0 - i} for i in range(1, 11)]
    rows[4]["tokens_per_s"], rows[9]["tokens_per_s"] = 100.0, 300.0
    rows[9].update(share_en=0.75, share_ko=0.25)  # the last row's cumulative shares
    rows.append({"kind": "eval", "iteration": 10, "lm loss": 1.5, "en lm loss": 1.0})
    f = tmp_path / "metrics.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    s = summarize(f, 12.0, (6, 10))
    assert (s["first_loss"], s["last_loss"], s["iterations"]) == (9.0, 0.0, 10)
    assert (s["first5_mean"], s["last5_mean"]) == (7.0, 2.0)
    assert s["tokens_per_s"] == 200.0 and s["eval"]["en lm loss"] == 1.0
    assert s["trained_shares"] == {"en": 0.75, "ko": 0.25}


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    cmd = [sys.executable, "-m", "xlda.demo", "--workdir", str(tmp_path / "demo"),
           "--docs-per-lang", "150", "--train-iters", "12", "--resume-at", "8"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resumed from" in proc.stdout and "loss curve" in proc.stdout
    s = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert s["iterations"] == 12 and s["last5_mean"] < s["first5_mean"]
    assert s["tokens_per_s"] > 0
    assert "[xlda] index train: " in proc.stdout and "trained mix" in proc.stdout
    assert abs(sum(s["trained_shares"].values()) - 1.0) < 1e-9
    ckpt = tmp_path / "demo" / "ckpt"
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "12"
