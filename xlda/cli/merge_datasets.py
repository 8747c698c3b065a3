"""`tools/merge_datasets.py`: merge per-shard preprocess outputs into one output set, per language.

Megatron-LM's tools/merge_datasets.py merges every .bin/.idx pair of a directory into one dataset;
this one keeps the languages apart and refuses shards made with different tokenizers.
"""
from __future__ import annotations

import sys

from xlda.cli.flags import FlagParser
from xlda.cli.run import run_tool


def build_parser():
    p = FlagParser(
        prog="merge_datasets.py",
        description="Merge the output sets of several tools/preprocess_data.py runs (e.g. the shards of an "
        "array job) into <output-prefix>_<lang>_<key>_document.{bin,idx} plus <output-prefix>.manifest.json, "
        "concatenating each language's datasets in input order.",
        epilog="example: python tools/merge_datasets.py --input out/shards --output-prefix out/data/lo",
    )
    p.add_argument("--input", nargs="+", required=True,
                   help="Path to directory containing all document files to merge (their *.manifest.json), "
                   "or manifests / output prefixes, merged in the order given")
    p.add_argument("--output-prefix", required=True, help="Path to binary output file without suffix")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from xlda.data.merge import MergeConfig
    from xlda.data.outputs import PreprocessError

    def merge(merger):
        print(f"merging {len(merger.paths)} output sets into {args.output_prefix}", file=sys.stderr)
        return merger.run()

    rc, manifest = run_tool("merge_datasets", merge, (PreprocessError, ValueError, OSError),
                            prepare=MergeConfig(input=args.input,
                                                output_prefix=args.output_prefix).build)
    if rc:
        return rc
    print(f"manifest: {manifest['manifest_path']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
