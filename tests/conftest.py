import os

import pytest

from xlda.paths import corpus_dir

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        # the marker, not item.keywords: those also hold directory names (a checkout named gpu)
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def corpus():
    """Path to ../shared/corpus; tests that need real text skip cleanly without it."""
    d = corpus_dir()
    if not (d / "libreoffice_help.en.jsonl.gz").exists():
        pytest.skip(f"real corpus not found at {d} (set XLDA_CORPUS_DIR)")
    return d
