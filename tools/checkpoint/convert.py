#!/usr/bin/env python
"""Convert xlda checkpoints: megatron-core (any TP/PP) <-> HF Llama, or reshard for another TP/PP.

  python tools/checkpoint/convert.py --from mcore --to hf --load-dir runs/x --save-dir hf/x \\
      --tokenizer-model tok/tokenizer.json
  python tools/checkpoint/convert.py --from hf --to mcore --load-dir hf/x --save-dir runs/y \\
      --target-tensor-parallel-size 2 --target-pipeline-parallel-size 2
  python tools/checkpoint/convert.py --from mcore --to mcore --load-dir runs/x --save-dir runs/x_tp4 \\
      --target-tensor-parallel-size 4

Megatron checkpoints written here hold the model only (no optimizer state): resume training from
them with the optimizer freshly initialised.
"""
from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def parse_args(argv=None):
    from xlda.cli.flags import FlagParser

    p = FlagParser(prog="convert.py", description=__doc__)
    p.add_argument("--from", dest="source", required=True, choices=("mcore", "hf"),
                   help="format of the checkpoint to load: mcore (xlda/megatron-core dist checkpoint) or hf "
                   "(Hugging Face Llama folder)")
    p.add_argument("--to", dest="target", required=True, choices=("mcore", "hf"),
                   help="format to write (mcore -> mcore reshards for another TP/PP)")
    p.add_argument("--load-dir", required=True,
                   help="Directory to load model checkpoint from (mcore: the run's --save dir or an iter_* dir; "
                   "hf: the model folder)")
    p.add_argument("--save-dir", required=True,
                   help="Directory to save model checkpoint to (new or empty; written under a temporary "
                   "name and renamed when complete)")
    p.add_argument("--target-tensor-parallel-size", type=int, default=1,
                   help="Target tensor model parallel size")
    p.add_argument("--target-pipeline-parallel-size", type=int, default=1,
                   help="Target pipeline model parallel size")
    p.add_argument("--tokenizer-model", default=None,
                   help="HF tokenizer.json to copy into the HF folder (mcore -> hf) or to check against the "
                   "model's vocabulary")
    p.add_argument("--iteration", type=int, default=None,
                   help="mcore source: iteration to read (None: the latest); hf source: iteration to write "
                   "(None: 0)")
    p.add_argument("--max-shard-size", default="5GB", help="HF safetensors shard size, e.g. 5GB, 500MB")
    p.add_argument("--chat-template", default=None,
                   help="mcore -> hf: Jinja chat template file written into tokenizer_config.json "
                   "(None: the chat_template.jinja a posttrain.py run saved next to its checkpoints)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="cast weights to this dtype (None: keep the stored dtype)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    from xlda.checkpoint_conversion import ConversionError, ConvertConfig
    from xlda.cli.flags import say_error

    cfg = ConvertConfig(**vars(args))
    try:
        out = cfg.run()
    except ConversionError as e:
        say_error("convert", e)
        return 2
    print(f"done: {out}")
    return 0


if __name__ == "__main__":  # dist_checkpointing's writer processes re-import __main__
    sys.exit(main())
