"""The names every layer checks against, in a module that imports nothing: the config, the CLI
and --help validate a mask mode or backend without loading torch or megatron-core."""

MODES = ("xlda", "document", "causal")  # the mask rules (xlda.attention.mask)
BACKENDS = ("sdpa", "thd", "flex", "te")  # the executors (xlda.attention.core_attention)
