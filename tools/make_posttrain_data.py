"""Make small real SFT/DPO data (and verifiable RLVR prompts) from per-language JSONL documents (no downloads).

    python tools/make_posttrain_data.py --output out/post       # the bundled corpus
    python tools/make_posttrain_data.py --input en=docs.en.jsonl --input ko=docs.ko.jsonl \
        --group-key page --output out/post                       # any corpus

writes sft.{train,valid}.jsonl (messages conversations) and dpo.{train,valid}.jsonl
(prompt/chosen/rejected) and rlvr.{train,valid}.jsonl (prompt/answer) for posttrain.py; see xlda/posttrain/make_data.py for how.
"""
import os
import sys

from xlda.cli.flags import FlagParser, say_error


def _input(text: str) -> tuple:
    lang, sep, path = text.partition("=")
    if not sep or not lang or not path:
        raise ValueError(f"--input {text!r}: expected LANG=PATH, e.g. ko=data/ko.jsonl.gz")
    return lang, path


def main(argv=None) -> int:
    from xlda.paths import corpus_dir
    from xlda.posttrain.make_data import BUNDLED, MakeDataError, Spec, bundled_inputs, make

    p = FlagParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", action="append", default=None, metavar="LANG=PATH",
                   help="a language's JSONL(.gz/.zst) documents; repeatable. Without it: the "
                        "bundled LibreOffice help corpus, with its own keys and header")
    p.add_argument("--text-key", default="text", help="the documents' text field")
    p.add_argument("--group-key", default=None,
                   help="field whose equal values mark translations of one document (their "
                        "other-language versions become DPO's rejected answers); without it "
                        "rejected answers are the chosen one's words shuffled")
    p.add_argument("--group-pattern", default=None,
                   help="regex applied to --group-key's value; its first group is the group")
    p.add_argument("--corpus", default=None,
                   help="folder of the bundled corpus, used without --input (when not given: "
                        "XLDA_CORPUS_DIR or ../shared/corpus)")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--pages-per-lang", type=int, default=200, help="documents read per language")
    p.add_argument("--max-answer-chars", type=int, default=400, help="answer length cap")
    p.add_argument("--valid-percent", type=int, default=10, help="held-out share of groups")
    p.add_argument("--seed", type=int, default=1234, help="random seed")
    a = p.parse_args(argv)
    try:
        if a.input:
            inputs = {}
            for lang, path in map(_input, a.input):
                if not os.path.isfile(path):
                    raise ValueError(f"--input {lang}={path}: no such file")
                inputs.setdefault(lang, []).append(path)
            spec = Spec(a.text_key, a.group_key, a.group_pattern)
        else:
            if a.group_key or a.group_pattern:
                raise ValueError("--group-key/--group-pattern need --input (the bundled corpus "
                                 "has its own)")
            inputs, spec = bundled_inputs(a.corpus or corpus_dir()), BUNDLED["spec"]
        counts = make(inputs, a.output, spec, a.pages_per_lang, a.seed, a.max_answer_chars,
                      a.valid_percent)
    except (MakeDataError, ValueError, OSError) as e:
        say_error("make_posttrain_data", e)
        return 2
    for name, n in counts.items():
        print(f"{a.output}/{name}.jsonl: {n} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
