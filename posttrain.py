"""Post-train (SFT, then DPO) a pretrained xlda model on megatron-core.

    torchrun --nproc-per-node 8 posttrain.py sft --config examples/trillion7b/sft_7b.yaml \
        --load ckpt/pretrain --tokenizer-model tok/ --data-path sft.jsonl --save ckpt/sft
    torchrun --nproc-per-node 8 posttrain.py dpo --config examples/trillion7b/dpo_7b.yaml \
        --load ckpt/sft --tokenizer-model tok/ --data-path pairs.jsonl --save ckpt/dpo

Flags are Megatron-LM's (see `posttrain.py sft --help`); they override the recipe.
"""
import sys

from xlda.posttrain.cli import main

if __name__ == "__main__":  # dist_checkpointing spawns workers that re-import this module
    sys.exit(main())
