"""tools/build_tokenizer.py end to end on the real corpus (small sizes, a few hundred docs)."""
import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from tokenizers import Tokenizer

from xlda.paths import REPO_ROOT
from xlda.tokenizer_build.cli import config_from_args, main
from xlda.tokenizer_build.scripts import LANG_SCRIPTS, char_script, token_bytes

LANGS = ("en", "ko", "ja", "zh")
BASE, KO, ZH, JA = 600, 150, 40, 40


def args(corpus, out, *extra, langs=("ko", "zh", "ja")):
    a = ["--base-input", str(corpus / "libreoffice_help.en.jsonl.gz"), "--base-vocab-size", str(BASE),
         "--max-docs", "150", "--heldout-fraction", "0.1", "--output-dir", str(out), "--speed-repeats", "1"]
    for lang in langs:
        a += ["--extend-input", f"{lang}={corpus / f'libreoffice_help.{lang}.jsonl.gz'}"]
    return a + list(extra)


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    """A base-only and an extended build (ko, then zh, then ja), plus a ko sweep."""
    root = tmp_path_factory.mktemp("tok")
    evals = [f"--eval-input={l}={corpus / f'libreoffice_help.{l}.jsonl.gz'}" for l in ("ko", "ja", "zh")]
    assert main(args(corpus, root / "base", *evals, langs=())) == 0
    ext = args(corpus, root / "ext", "--extend-tokens", f"ko={KO}", "--extend-tokens", f"zh={ZH}",
               "--extend-tokens", f"ja={JA}", "--sweep-ko-tokens", f"50,{KO}")
    assert main(ext) == 0
    return root, ext


def load(d: Path):
    return Tokenizer.from_file(str(d / "tokenizer.json")), json.loads((d / "report.json").read_text())


def docs(corpus, lang, n=40):
    out = []
    with gzip.open(corpus / f"libreoffice_help.{lang}.jsonl.gz", "rt") as f:
        for line in f:
            out.append(json.loads(line)["text"])
            if len(out) == n:
                break
    return out


@pytest.mark.parametrize("lang", LANGS)
def test_round_trip_real_documents(built, corpus, lang):
    from transformers import PreTrainedTokenizerFast

    root, _ = built
    tok, _ = load(root / "ext")
    hf = PreTrainedTokenizerFast(tokenizer_file=str(root / "ext" / "tokenizer.json"))
    for text in docs(corpus, lang, 20) + [text + "<|endoftext|>" for text in docs(corpus, lang, 2)]:
        ids = tok.encode(text).ids
        assert tok.decode(ids, skip_special_tokens=False) == text
        assert hf.encode(text) == ids
        assert hf.decode(ids) == text


def test_base_ids_unchanged_and_sizes_exact(built):
    root, _ = built
    base, brep = load(root / "base")
    ext, rep = load(root / "ext")
    bv, ev = base.get_vocab(), ext.get_vocab()
    assert len(bv) == BASE and brep["vocab_size"] == BASE
    assert all(ev[t] == i for t, i in bv.items())
    assert len(ev) == BASE + KO + ZH + JA == rep["vocab_size"]
    assert {l: a["tokens"] for l, a in rep["added"].items()} == {"ko": KO, "zh": ZH, "ja": JA}
    assert rep["special_tokens"] == {"<|endoftext|>": 0, "<|pad|>": 1, "<|bos|>": 2,
                                     "<|im_start|>": 3, "<|im_end|>": 4}
    # New ids are appended in extension order, and each added token is of its language's script
    # (or a partial UTF-8 step toward it).
    by_id = sorted((i, t) for t, i in ev.items() if i >= BASE)
    assert [i for i, _ in by_id] == list(range(BASE, BASE + KO + ZH + JA))
    spans = {"ko": by_id[:KO], "zh": by_id[KO:KO + ZH], "ja": by_id[KO + ZH:]}
    for lang, toks in spans.items():
        for _, t in toks:
            text = token_bytes(t).decode("utf-8", errors="ignore").lstrip(" ")
            assert all(char_script(c) in LANG_SCRIPTS[lang] for c in text), (lang, text)


def test_extension_improves_korean_not_english(built):
    root, _ = built
    _, brep = load(root / "base")
    _, rep = load(root / "ext")
    base_h, ext_h = rep["heldout"]["base"], rep["heldout"]["extended"]
    assert brep["heldout"]["extended"]["ko"] == base_h["ko"]  # same base in both builds
    assert ext_h["ko"]["tokens"] < base_h["ko"]["tokens"]
    assert ext_h["ko"]["chars_per_token"] > base_h["ko"]["chars_per_token"]
    assert ext_h["en"] == base_h["en"]
    assert rep["encode_tokens_per_s"]["extended"] > 0
    md = (root / "ext" / "report.md").read_text()
    assert "| ko |" in md and "Hangul" in md


def test_sweep_writes_csv_md_png(built):
    root, _ = built
    out = root / "ext"
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [int(r["ko_tokens"]) for r in rows] == [0, 50, KO]
    assert [int(r["vocab_size"]) for r in rows] == [BASE + ZH + JA + n for n in (0, 50, KO)]
    ko = [float(r["chars_per_token_ko"]) for r in rows]
    assert ko[0] < ko[1] < ko[2]
    assert len({r["chars_per_token_en"] for r in rows}) == 1
    # The last sweep point is the requested build: same numbers as the report.
    _, rep = load(out)
    assert float(rows[-1]["chars_per_token_ko"]) == rep["heldout"]["extended"]["ko"]["chars_per_token"]
    assert (out / "sweep.md").read_text().count("\n") == 2 + len(rows)


def test_deterministic_tokenizer_json(built, tmp_path):
    """A fresh process (other hash seed), without the sweep, writes the same bytes."""
    root, ext = built
    again = [str(tmp_path) if a == str(root / "ext") else a for a in ext[: ext.index("--sweep-ko-tokens")]]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "build_tokenizer.py"), *again,
                        "--speed-repeats", "0"], capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "tokenizer.json").read_bytes() == (root / "ext" / "tokenizer.json").read_bytes()


def test_too_small_corpus_error(corpus, tmp_path, capsys):
    small = tmp_path / "ko.jsonl"
    small.write_text("".join(json.dumps({"id": str(i), "lang": "ko", "text": t}) + "\n" for i, t in
                             enumerate(["안녕하세요 반갑습니다", "파일을 엽니다", "LibreOffice 도움말"])))
    a = args(corpus, tmp_path / "o", langs=()) + ["--extend-input", f"ko={small}", "--extend-tokens", "ko=5000",
                                                   "--heldout-fraction", "0"]
    assert main(a) == 2
    err = capsys.readouterr().err
    assert "extension ko: requested 5000 new tokens" in err
    assert "3 documents" in err and "supports only" in err and "--extend-tokens ko=" in err
    assert not (tmp_path / "o" / "tokenizer.json").exists()


def test_missing_file_and_bad_flags(corpus, tmp_path, capsys):
    assert main(args(corpus, tmp_path, "--extend-input", "ko=/nonexistent/ko.jsonl.gz",
                     "--extend-tokens", "ko=10", langs=())) == 2
    assert "input file not found: /nonexistent/ko.jsonl.gz" in capsys.readouterr().err
    bad = [
        (["--extend-tokens", "ko=abc"], "N must be an integer"),
        (["--extend-tokens", "ko"], "expects LANG=VALUE"),
        (["--sweep-ko-tokens", "1,x"], "comma-separated integers"),
        (["--max-docs", "0"], "--max-docs must be >= 1"),
        (["--speed-repeats", "-1"], "--speed-repeats must be >= 0"),
    ]
    for extra, msg in bad:
        with pytest.raises(SystemExit) as e:
            config_from_args(args(corpus, tmp_path, *extra, langs=()))
        assert e.value.code == 2 and msg in capsys.readouterr().err
    for extra, msg in [
        (["--heldout-fraction", "1.5"], "--heldout-fraction must be in [0, 1)"),
        (["--extend-tokens", "ko=10"], "--extend-tokens ko=10 has no --extend-input ko=PATH"),
        (["--extend-tokens", "ko=-1", "--extend-input", "ko=x"], "must be >= 0"),
        (["--extend-tokens", "xx=3", "--extend-input", "xx=x"], "no target script known for language 'xx'"),
        (["--base-vocab-size", "100"], "must exceed 261"),
        (["--sweep-ko-tokens", "5", "--heldout-fraction", "0", "--extend-input", "ko=x"], "use --heldout-fraction > 0"),
    ]:
        assert main(args(corpus, tmp_path, *extra, langs=())) == 2, extra
        assert msg in capsys.readouterr().err, extra


def test_script_entry_point(corpus, tmp_path):
    r = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "build_tokenizer.py"), "--help"],
                       capture_output=True, text=True, cwd=REPO_ROOT)
    assert r.returncode == 0 and "--extend-tokens" in r.stdout and "<|endoftext|>" in r.stdout


def test_added_tokens_are_reachable(built):
    """Merges fire at encode time as in training: each added token that is whole UTF-8 text
    encodes, on its own, to exactly its id."""
    root, _ = built
    tok, _ = load(root / "ext")
    whole = 0
    for t, i in tok.get_vocab().items():
        if i < BASE:
            continue
        try:
            text = token_bytes(t).decode("utf-8")
        except UnicodeDecodeError:
            continue  # a partial-syllable step, not text on its own
        whole += 1
        assert tok.encode(text).ids == [i], (t, text)
    assert whole >= (KO + ZH + JA) // 3  # about half are partial-UTF-8 steps


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["파일을 ", "열고", "文件", "ファイル", " the", "é", "\n", "🔎", "<|endoftext|>", " "]),
                max_size=12), st.text(max_size=20))
def test_round_trip_property(built, pieces, tail):
    root, _ = built
    tok = Tokenizer.from_file(str(root / "ext" / "tokenizer.json"))
    text = "".join(pieces) + tail
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
