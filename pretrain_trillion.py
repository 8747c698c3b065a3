"""Pretrain a Trillion-7B style model with XLDA on megatron-core.

    torchrun --nproc-per-node 8 pretrain_trillion.py --config examples/trillion7b/trillion_7b.yaml \
        --data-path data/corpus_en_text_document data/corpus_ko_text_document --save ckpt

Flags are Megatron-LM's (see `--help`); they override the recipe.
"""
import sys

from xlda.cli.pretrain import main

if __name__ == "__main__":  # dist_checkpointing spawns workers that re-import this module
    sys.exit(main())
