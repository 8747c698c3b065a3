"""XLDA attention: the dense oracle mask, MaskParams, and the executors (sdpa, thd, flex, te)."""
from xlda.attention.mask import MODES, dense_mask
from xlda.attention.params import MaskParams

__all__ = ["MODES", "MaskParams", "dense_mask"]
