"""Validating a config and printing --help import neither torch nor megatron-core (part of issue
21: `RunConfig()` took 3.5-6 s and `pretrain_trillion.py --help` 5-7 s because model/config.py
imported the attention executors for their names)."""
import subprocess
import sys

import pytest

from xlda.paths import REPO_ROOT

PROBE = """
import runpy, sys
{body}
heavy = sorted(m for m in ("torch", "megatron") if m in sys.modules)
print("heavy:", ",".join(heavy))
"""


def _heavy(body: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE.format(body=body)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_run_config_and_its_checks_import_no_torch():
    assert _heavy("from xlda.training.config import RunConfig\n"
                  "from xlda.attention import BACKENDS, MODES\n"
                  "RunConfig().model.validate()") == "heavy:"


@pytest.mark.parametrize("argv", [["pretrain_trillion.py", "--help"],
                                  ["posttrain.py", "sft", "--help"],
                                  ["posttrain.py", "dpo", "--help"]])
def test_help_imports_no_torch(argv):
    body = (f"sys.argv = {argv!r}\n"
            "try:\n"
            f"    runpy.run_path({argv[0]!r}, run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    assert e.code == 0, e.code\n")
    assert _heavy(body) == "heavy:"


def test_a_flag_error_is_one_line_before_torch():
    body = ("import io, contextlib\n"
            "from xlda.cli.pretrain import main\n"
            "err = io.StringIO()\n"
            "with contextlib.redirect_stderr(err):\n"
            "    rc = main(['--config', 'examples/trillion7b/tiny.yaml', '--data-path', 'x'])\n"
            "lines = err.getvalue().strip().splitlines()\n"
            "assert rc == 2 and len(lines) == 1 and lines[0].startswith('pretrain: error: '), lines\n")
    assert _heavy(body) == "heavy:"
