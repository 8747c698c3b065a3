"""Make small real SFT/DPO data from the corpus (no downloads).

    python tools/make_posttrain_data.py --corpus ../shared/corpus --output data/posttrain

writes sft.{train,valid}.jsonl (messages conversations) and dpo.{train,valid}.jsonl
(prompt/chosen/rejected) for posttrain.py; see xlda/posttrain/make_data.py for how.
"""
import sys

from xlda.cli.flags import FlagParser


def main(argv=None) -> int:
    from xlda.paths import corpus_dir
    from xlda.posttrain.make_data import make

    p = FlagParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=None, help="corpus folder (default: XLDA_CORPUS_DIR or "
                                                  "../shared/corpus)")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--pages-per-lang", type=int, default=200, help="help pages read per language")
    p.add_argument("--max-answer-chars", type=int, default=400, help="answer length cap")
    p.add_argument("--valid-percent", type=int, default=10, help="held-out share of pages")
    p.add_argument("--seed", type=int, default=1234, help="random seed")
    a = p.parse_args(argv)
    counts = make(a.corpus or corpus_dir(), a.output, a.pages_per_lang, a.seed,
                  a.max_answer_chars, a.valid_percent)
    for name, n in counts.items():
        print(f"{a.output}/{name}.jsonl: {n} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
