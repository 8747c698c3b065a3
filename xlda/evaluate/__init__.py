"""Evaluation on lm-evaluation-harness benchmarks (tools/evaluate.py, docs/evaluate.md).

``session``: a Megatron checkpoint opened for scoring at any TP/PP/DP; ``scorer``: log-likelihoods
and greedy generation through ``Trainer.forward_only``; ``lm_backend``: lm-eval's
``xlda-megatron`` model; ``suite``: suite YAMLs and offline task data; ``report``: per-task and
per-language tables, macro/micro averages, cross-lingual consistency; ``cli``: the tool.
A stage of its own above training (it imports xlda.training, nothing imports it).
"""
