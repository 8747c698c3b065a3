"""The GPT model: ModelConfig (Megatron flag names) -> megatron-core GPTModel with XLDA attention."""
from xlda.model.config import ModelConfig

__all__ = ["ModelConfig"]
