"""xlda.curate: the curation stage in front of preprocessing, built on datatrove.

Language ID (xlda.data.lang_id), per-language Gopher/FineWeb filters, exact and MinHash
deduplication, a quality score and the exact top-fraction annealing cut; see pipeline.py.
Needs the `curate` extra (pip install -e .[curate]); the trainer does not.
"""
from xlda.curate.config import CurateConfig, CurateError, LanguageConfig

__all__ = ["CurateConfig", "CurateError", "LanguageConfig"]
