"""XLDA attention: the dense oracle mask, MaskParams, and the executors (sdpa, thd, flex, te).

The names load lazily (as xlda.data's): `xlda.attention.modes` is read by configs and command
lines that must not pay for importing torch."""
import importlib

_HOME = {"MODES": "xlda.attention.modes", "BACKENDS": "xlda.attention.modes",
         "dense_mask": "xlda.attention.mask", "MaskParams": "xlda.attention.params"}
__all__ = ["BACKENDS", "MODES", "MaskParams", "dense_mask"]


def __getattr__(name):
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'xlda.attention' has no attribute {name!r}")
