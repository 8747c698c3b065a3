"""scripts/setup_check.py: the fast no-op test of scripts/setup.sh (issue 12.9)."""
import importlib.machinery
import importlib.metadata as md
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("setup_check", ROOT / "scripts" / "setup_check.py")
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def test_requirements_come_from_setup_py(tmp_path):
    reqs = check.requirements(ROOT / "setup.py")
    assert "torch>=2.4" in reqs and "megatron-core>=0.16.1" in reqs
    assert "hypothesis>=6.100" in reqs and "lingua-language-detector>=2.0" in reqs
    # a requirement someone adds to setup.py (here an extra) is checked without editing the check
    (tmp_path / "setup.py").write_text(
        "from setuptools import setup\nsetup(name='x', install_requires=['numpy>=1'],\n"
        "      extras_require={'dev': ['not-a-real-package-xlda>=1'], 'other': ['ignored']})\n")
    reqs = check.requirements(tmp_path / "setup.py")
    assert reqs == ["numpy>=1", "not-a-real-package-xlda>=1"]
    assert check.missing_requirement(reqs) == "not-a-real-package-xlda is not installed"


def test_version_ranges():
    assert check.missing_requirement(["pyyaml>=6"]) is None
    v = md.version("pyyaml")
    assert check.missing_requirement(["pyyaml>=999"]) == f"pyyaml {v} does not satisfy 'pyyaml>=999'"
    assert check.missing_requirement([f"torch>={md.version('torch').split('+')[0]}"]) is None


def test_kernel_built_for_this_interpreter_and_newer_than_its_source(tmp_path):
    d = tmp_path / "xlda" / "data"
    d.mkdir(parents=True)
    src = d / "_packing_kernel.c"
    src.write_text("/* c */")
    assert not check.kernel_built(tmp_path)
    (d / "_packing_kernel.cpython-27-foo.so").write_text("")  # another interpreter's build
    assert not check.kernel_built(tmp_path)
    built = d / ("_packing_kernel" + importlib.machinery.EXTENSION_SUFFIXES[0])
    built.write_text("")
    os.utime(src, (1000, 1000))
    assert check.kernel_built(tmp_path)
    os.utime(src, (built.stat().st_mtime + 10,) * 2)  # source edited after the build
    assert not check.kernel_built(tmp_path)


def test_installed_here_only_for_the_installed_checkout(tmp_path):
    assert not check.installed_here(tmp_path)
    urls = [json.loads(d.read_text("direct_url.json") or "{}").get("url", "")
            for d in md.distributions() if d.metadata["Name"] == "xlda"]
    installed = [u for u in urls if u.startswith("file://")]
    if installed:  # the editable install this test suite runs against
        assert check.installed_here(Path(installed[0][len("file://"):]))


def test_cli_prints_a_reason_without_importing_torch(tmp_path):
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(name='x')\n")
    probe = ("import runpy, sys; sys.argv = ['setup_check.py']; "
             f"runpy.run_path({str(ROOT / 'scripts' / 'setup_check.py')!r}, run_name='__main__'); "
             "print('torch' in sys.modules, 'megatron' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.splitlines() == [f"no: xlda is not installed (editable) from {tmp_path}",
                                       "False False"], out.stderr
