"""Trainer and tools print what matters (issue 12.5): megatron-core's TE/Apex fallback warnings,
"full scope is deprecated", FutureWarnings and Megatron-FSDP INFO lines are filtered and one
line says what runs without TE/Apex; the resolved config goes to the run directory, not stdout."""
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.cli.conftest import TINY

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("Transformer Engine and Apex are not installed", "Apex is not installed",
         "full scope is deprecated", "FutureWarning", "Megatron-FSDP", "warnings.warn")


def _run(*argv):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "RANK",
                                                           "WORLD_SIZE", "MASTER_PORT")}
    return subprocess.run([sys.executable, *map(str, argv)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**env, "OMP_NUM_THREADS": "1"})


def test_trainer_output_is_quiet_and_config_goes_to_the_run_dir(tmp_path):
    out = _run(ROOT / "pretrain_trillion.py", "--config", TINY, "--mock-data", "--seq-length",
               "32", "--train-iters", "2", "--lr-warmup-iters", "0", "--lr-wsd-decay-iters", "1",
               "--eval-interval", "0", "--run-dir", tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert not [n for n in NOISE if n in text], text
    lines = out.stdout.splitlines()
    note = [l for l in lines if "not installed" in l]
    if note:  # without TE/Apex (CPU): exactly one line says what runs instead
        assert len(note) == 1 and note[0].startswith("[xlda] Transformer Engine and Apex not "
                                                     "installed: torch norms")
    assert f"[xlda] resolved config: {tmp_path}/run_config.yaml (--print-config prints it)" in lines
    assert not any(l.startswith(("model:", "  num_layers:")) for l in lines)
    saved = yaml.safe_load((tmp_path / "run_config.yaml").read_text())
    assert saved["training"]["train_iters"] == 2 and saved["model"]["seq_length"] == 32


def test_tool_output_is_quiet(tmp_path):
    out = _run(ROOT / "tools" / "memory_plan.py", "--config", TINY)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert "8 GPUs" in out.stdout
