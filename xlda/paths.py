"""Where the shared real-text corpus lives (read in place, never copied into the repo)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def corpus_dir() -> Path:
    """`$XLDA_CORPUS_DIR`, else `<repo>/../shared/corpus` (the layout on dev machines and CI)."""
    env = os.environ.get("XLDA_CORPUS_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "corpus"
