"""Build (and check) the XLDA packing indices of a run ahead of the job.

Takes the trainer's flags (`--config` + Megatron-style overrides, exactly as
pretrain_trillion.py) and builds the train, validation and annealing indices the trainer will
open, sized as the trainer sizes them, into the cache next to the data (or --data-cache-path).
Meant as a CPU step before the GPU job (examples/trillion7b/build_index_7b.sbatch): the job then
opens cached indices in seconds instead of waiting on rank 0.

    python tools/build_packing_index.py --config examples/trillion7b/trillion_7b.yaml \
        --data-path ... [--verify]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from typing import Optional, Sequence
from xlda.cli.flags import say_error


def main(argv: Optional[Sequence[str]] = None) -> int:
    warnings.filterwarnings("ignore", message=".*(Transformer Engine|Apex).*")
    own = argparse.ArgumentParser(
        prog="build_packing_index.py", allow_abbrev=False, add_help=False,
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    own.add_argument("--verify", action="store_true",
                     help="also verify every cached array's full CRC32 (default: sizes, and "
                          "whole checksums only for arrays up to 256 MiB)")
    own.add_argument("-h", "--help", action="store_true")
    args, rest = own.parse_known_args(argv)
    if args.help:
        own.print_help()
        print("\nAll other flags are pretrain_trillion.py's (see its --help).")
        return 0
    # xlda's progress lines; megatron-core's INFO (a 1,400-character config dump, index reader
    # chatter) only as warnings
    logging.basicConfig(level=logging.WARNING, format="[xlda] %(message)s", stream=sys.stdout)
    logging.getLogger("xlda").setLevel(logging.INFO)
    from xlda.cli.pretrain import _data_user_error, resolve
    from xlda.data.dataset import index_cache_dir
    from xlda.data.index_cache import cache_path, verify
    from xlda.training.batches import build_run_datasets
    from xlda.training.config import ConfigError

    from xlda.cli import preflight

    try:
        cfg, _ = resolve(rest)
        if not cfg.data.mock:  # the files and the mix, as pretrain checks them (not the device:
            main_paths = cfg.data.language_paths()  # an index is built on any machine)
            preflight.check_files(main_paths, "--data-path")
            if cfg.data.annealing_data_path or cfg.data.annealing_paths:
                preflight.check_files(cfg.data.language_paths(annealing=True),
                                      "--annealing-data-path")
            preflight.check_beta(cfg.data.xlda_beta, main_paths, "--xlda-beta")
            preflight.check_groups(cfg.data, main_paths)
    except (ConfigError, ValueError) as e:
        say_error("build_packing_index", e)
        return 2
    t0 = time.time()
    try:
        ds = build_run_datasets(cfg, log=print)
    except ValueError as e:  # a mix or split the data cannot give: one line, as pretrain
        msg = _data_user_error(e)
        if msg is None:
            raise
        say_error("build_packing_index", msg)
        return 2
    bad = 0
    for name, d in (("train", ds.train), ("valid", ds.valid), ("annealing", ds.annealing)):
        if d is None or d.index is None:
            continue
        where = cache_path(index_cache_dir(d.config), d.cache_base)
        line = f"{name}: {len(d)} windows in {where}"  # (its figures: the [xlda] index lines)
        if args.verify and os.path.isdir(where):
            problem = verify(where, full=True)
            bad += problem is not None
            line += f"; verify: {problem or 'ok'}"
        print(line)
    print(f"done in {time.time() - t0:.1f}s")
    return 1 if bad else 0
