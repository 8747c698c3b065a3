"""XLDA data: multilingual packed datasets on megatron-core (see docs/CONTRACTS.md)."""
from xlda.data.dataset import XLDADataset, XLDADatasetConfig, build_xlda_datasets

__all__ = ["XLDADataset", "XLDADatasetConfig", "build_xlda_datasets"]
