"""Checkpoint conversion: megatron-core dist checkpoints <-> HF Llama folders, and TP/PP resharding.

Entry point: ``tools/checkpoint/convert.py`` (CLI) or :class:`ConvertConfig` ``.run()``.
"""
from xlda.checkpoint_conversion.arch import ConversionError, ModelArch
from xlda.checkpoint_conversion.convert import ConvertConfig

__all__ = ["ConversionError", "ConvertConfig", "ModelArch"]
