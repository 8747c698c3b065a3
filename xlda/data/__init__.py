"""XLDA data: multilingual packed datasets on megatron-core (see docs/CONTRACTS.md).

The dataset names load lazily: preprocessing (tokenizer, lang-id, writer) imports this package
and should not pay for importing megatron-core's dataset stack and torch up front.
"""
import importlib

__all__ = ["XLDADataset", "XLDADatasetConfig", "build_xlda_datasets"]


def __getattr__(name):
    if name in __all__:
        return getattr(importlib.import_module("xlda.data.dataset"), name)
    raise AttributeError(f"module 'xlda.data' has no attribute {name!r}")
