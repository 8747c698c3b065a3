"""xlda: cross-lingual document attention pretraining on megatron-core."""

from xlda import quiet as _quiet

_quiet.install()  # before megatron-core is imported anywhere: its TE/Apex fallback noise

__version__ = "0.1.0"
