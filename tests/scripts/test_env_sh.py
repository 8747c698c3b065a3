"""scripts/env.sh + setup.sh: the README's commands use the project's .venv by default, never
the newcomer's system Python; PYTHON= and XLDA_VENV= override (issue 24.8)."""
import os
import subprocess
from pathlib import Path

from xlda.paths import REPO_ROOT

ROOT = Path(REPO_ROOT)


def _env(**kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "XLDA_VENV", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"
    env.update(kw)
    return env


def _resolve(**kw) -> tuple[str, str]:
    out = subprocess.run(["bash", "-c", 'source scripts/env.sh; echo "$PY"; echo "$PATH"'],
                         cwd=ROOT, env=_env(**kw), capture_output=True, text=True, check=True)
    py, path = out.stdout.splitlines()
    return py, path


def test_default_is_the_checkouts_venv_first_on_path():
    py, path = _resolve()
    assert py == str(ROOT / ".venv" / "bin" / "python")
    assert path == f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin"


def test_python_overrides_and_leaves_path_alone():
    assert _resolve(PYTHON="/opt/conda/bin/python") == ("/opt/conda/bin/python", "/usr/bin:/bin")


def test_xlda_venv_moves_the_environment(tmp_path):
    py, path = _resolve(XLDA_VENV=str(tmp_path / "env"))
    assert py == str(tmp_path / "env" / "bin" / "python")
    assert path.startswith(str(tmp_path / "env" / "bin") + ":")


def test_a_venv_that_cannot_be_made_fails_in_one_line_and_leaves_nothing(tmp_path):
    venv = tmp_path / "env"
    p = subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, capture_output=True, text=True,
                       env=_env(XLDA_VENV=str(venv), XLDA_BASE_PYTHON="false"))
    assert p.returncode == 1
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("[setup] error: 'false -m venv' failed")
    assert "python3-venv" in err[0] and "PYTHON=/path/to/python" in err[0]
    assert not venv.exists()
