"""xlda: cross-lingual document attention pretraining on megatron-core."""

__version__ = "0.1.0"
