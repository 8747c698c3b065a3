"""Is this checkout ready to run (``scripts/setup.sh``'s no-op test)? Prints "yes" or the first
reason it is not. Imports nothing heavy (no torch, no megatron-core: seconds each): it reads
setup.py's requirements and the installed distributions' metadata instead, so requirements
other helpers add to setup.py are checked without editing this file.

Not ready when: a requirement of setup.py (install_requires + the dev and lingua extras) is
missing or outside its version range; xlda is installed from another checkout (its editable
install would leave this checkout's C kernel unbuilt); the C packing kernel is not built here
for this interpreter, or is older than its source."""
from __future__ import annotations

import ast
import importlib.machinery
import importlib.metadata as md
import json
import os
import re
import sys
from pathlib import Path

# setup.sh: -e '.[dev,lingua,curate,posttrain,rlvr,eval]'
EXTRAS = ("dev", "lingua", "curate", "posttrain", "rlvr", "eval")


def requirements(setup_py: Path) -> list[str]:
    """install_requires + the EXTRAS of setup.py's ``setup(...)`` call (literal lists)."""
    tree = ast.parse(setup_py.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            kw = {k.arg: k.value for k in node.keywords}
            reqs = list(ast.literal_eval(kw.get("install_requires", ast.List([]))))
            extras = ast.literal_eval(kw["extras_require"]) if "extras_require" in kw else {}
            for name in EXTRAS:
                reqs += extras.get(name, [])
            return reqs
    raise ValueError(f"{setup_py}: no setup(...) call")


def _version_ok(req: str, version: str) -> bool:
    try:
        from packaging.requirements import Requirement
    except ImportError:  # no packaging: presence is all we can check
        return True
    return Requirement(req).specifier.contains(version.split("+")[0], prereleases=True)


def missing_requirement(reqs: list[str]) -> str | None:
    for req in reqs:
        name = re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0]
        try:
            version = md.version(name)
        except md.PackageNotFoundError:
            return f"{name} is not installed"
        if not _version_ok(req, version):
            return f"{name} {version} does not satisfy {req!r}"
    return None


def installed_here(root: Path) -> bool:
    """Any xlda install record pointing at this checkout (its own xlda.egg-info has no URL)."""
    here = root.resolve().as_uri()
    for dist in md.distributions():
        if dist.metadata["Name"] == "xlda":
            url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
            if url.rstrip("/") == here or url == "file://" + str(root):
                return True
    return False


def kernel_built(root: Path) -> bool:
    src = root / "xlda" / "data" / "_packing_kernel.c"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        built = src.with_name("_packing_kernel" + suffix)
        if built.exists() and built.stat().st_mtime >= src.stat().st_mtime:
            return True
    return False


def why_not_ready(root: Path) -> str | None:
    reason = missing_requirement(requirements(root / "setup.py"))
    if reason:
        return reason
    if not installed_here(root):
        return f"xlda is not installed (editable) from {root}"
    if not kernel_built(root):
        return "the C packing kernel (xlda/data/_packing_kernel.c) is not built"
    return None


if __name__ == "__main__":  # run from the checkout's root, as scripts/setup.sh does
    if sys.argv[1:] == ["--versions"]:
        print(f"[setup] torch {md.version('torch')}, megatron-core {md.version('megatron-core')}")
        sys.exit(0)
    reason = why_not_ready(Path(os.getcwd()))
    print("yes" if reason is None else f"no: {reason}")
