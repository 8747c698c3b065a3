import gzip
import json
import os

import numpy as np
import pytest

from tests.data.fixtures import (
    CORPUS_LANGS, corpus_docs, train_sentencepiece, train_test_tokenizer, word_level_tokenizer, write_jsonl,
)
from xlda.cli.preprocess import main
from xlda.data import preprocess as pp
from xlda.data.tokenizer import build_tokenizer

WORDS = ["hello", "world", "안녕", "세계", "こんにちは", "你好"]  # ids 2..7 (0 = <|endoftext|>, 1 = [UNK])


def read_back(prefix):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    ds = IndexedDataset(str(prefix))
    return ds, [ds[i].tolist() for i in range(len(ds))]


def cli(tok, inputs, out, *extra):
    return main(["--input", *map(str, inputs), "--output-prefix", str(out), "--tokenizer-type",
                 "HuggingFaceTokenizer", "--tokenizer-model", str(tok), "--log-interval", "0", *extra])


def outputs(d):
    return sorted(p.name for p in d.iterdir() if p.suffix in (".bin", ".idx") or ".tmp-" in p.name)


@pytest.fixture
def wl(tmp_path):
    return word_level_tokenizer(tmp_path, WORDS)


DOCS = [
    {"text": "hello world", "lang": "en"},
    {"text": "안녕 세계 hello", "lang": "ko"},
    {"text": "world world", "lang": "en"},
    {"text": "こんにちは 你好", "lang": "ja"},
]


def test_exact_ids_per_language_with_eod(tmp_path, wl):
    src = write_jsonl(tmp_path / "a.jsonl", DOCS)
    assert cli(wl, [src], tmp_path / "out" / "x", "--append-eod") == 0
    en, en_ids = read_back(tmp_path / "out" / "x_en_text_document")
    assert en_ids == [[2, 3, 0], [3, 3, 0]]
    assert en.index.dtype == np.uint16
    assert read_back(tmp_path / "out" / "x_ko_text_document")[1] == [[4, 5, 2, 0]]
    assert read_back(tmp_path / "out" / "x_ja_text_document")[1] == [[6, 7, 0]]
    m = json.loads((tmp_path / "out" / "x.manifest.json").read_text())
    assert m["tokenizer"]["sha256"] == build_tokenizer("HuggingFaceTokenizer", wl).identity()["sha256"]
    assert {k: (v["documents"], v["tokens"]) for k, v in m["languages"].items()} == {
        "en": (2, 6), "ko": (1, 4), "ja": (1, 3)}
    assert m["languages"]["ko"]["sources"] == [str(src.resolve())]
    assert m["languages"]["en"]["prefix"] == str((tmp_path / "out" / "x_en_text_document").resolve())
    assert set(m["rejected"]) == set(pp.REJECT_REASONS) and sum(m["rejected"].values()) == 0
    assert m["dtype"] == "uint16"


def test_no_eod_without_flag(tmp_path, wl):
    assert cli(wl, [write_jsonl(tmp_path / "a.jsonl", DOCS[:1])], tmp_path / "x") == 0
    assert read_back(tmp_path / "x_en_text_document")[1] == [[2, 3]]


def test_gz_zst_and_glob_inputs(tmp_path, wl):
    (tmp_path / "in").mkdir()
    write_jsonl(tmp_path / "in" / "1.jsonl", DOCS[:1])
    write_jsonl(tmp_path / "in" / "2.jsonl.gz", DOCS[1:3], "gz")
    write_jsonl(tmp_path / "in" / "3.jsonl.zst", DOCS[3:], "zst")
    assert cli(wl, [tmp_path / "in" / "*.jsonl*"], tmp_path / "x", "--append-eod") == 0
    assert read_back(tmp_path / "x_en_text_document")[1] == [[2, 3, 0], [3, 3, 0]]
    assert read_back(tmp_path / "x_ko_text_document")[1] == [[4, 5, 2, 0]]
    assert read_back(tmp_path / "x_ja_text_document")[1] == [[6, 7, 0]]
    m = json.loads((tmp_path / "x.manifest.json").read_text())
    assert [os.path.basename(p) for p in m["languages"]["en"]["sources"]] == ["1.jsonl", "2.jsonl.gz"]
    assert [os.path.basename(p) for p in m["inputs"]] == ["1.jsonl", "2.jsonl.gz", "3.jsonl.zst"]


def test_token_dtype_matches_megatron():
    from megatron.core.datasets.indexed_dataset import DType

    for v in (2, 65499, 65500, 70000, 256000):
        assert pp.token_dtype(v) == DType.optimal_dtype(v)
    assert pp.token_dtype(65499) == np.uint16 and pp.token_dtype(65500) == np.int32


def test_int32_path_keeps_large_ids(tmp_path):
    words = [f"w{i}" for i in range(70000)]
    tok = word_level_tokenizer(tmp_path, words)
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": "w0 w69999 w65534", "lang": "en"}])
    assert cli(tok, [src], tmp_path / "x", "--append-eod") == 0
    ds, ids = read_back(tmp_path / "x_en_text_document")
    assert ds.index.dtype == np.int32
    assert ids == [[2, 70001, 65536, 0]]


def test_rejects_counted_with_file_line(tmp_path, wl, capsys):
    src = write_jsonl(tmp_path / "bad.jsonl", [
        {"text": "hello", "lang": "en"},        # 1 ok
        "{not json",                             # 2 malformed_json
        {"body": "hello", "lang": "en"},        # 3 missing_text_key
        {"text": "   ", "lang": "en"},          # 4 empty_document
        {"text": "hello", "lang": "fr"},        # 5 unknown_language
        {"text": "hello"},                       # 6 missing_language
        "",                                      # 7 blank: skipped, counted
        {"text": 5, "lang": "en"},              # 8 text_not_string
        "[1, 2]",                                # 9 malformed_json (not an object)
    ])
    (tmp_path / "bin.jsonl").write_bytes(b'{"text": "\xff\xfe", "lang": "en"}\n')
    assert cli(wl, [src, tmp_path / "bin.jsonl"], tmp_path / "x", "--languages", "en,ko") == 0
    m = json.loads((tmp_path / "x.manifest.json").read_text())
    assert m["rejected"] == {"malformed_json": 2, "invalid_utf8": 1, "invalid_unicode": 0, "missing_text_key": 1,
                             "text_not_string": 1, "empty_document": 1, "document_too_long": 0,
                             "missing_language": 1, "invalid_language": 0, "undetected_language": 0,
                             "unknown_language": 1, "bad_group": 0}
    assert m["blank_lines"] == 1
    assert m["languages"]["en"]["documents"] == 1
    ex = m["reject_examples"]
    assert ex["malformed_json"][0].startswith(f"{src}:2: malformed_json")
    assert ex["malformed_json"][1].startswith(f"{src}:9: ")
    assert ex["missing_text_key"][0].startswith(f"{src}:3: ")
    assert ex["empty_document"][0].startswith(f"{src}:4: ")
    assert ex["unknown_language"][0].startswith(f"{src}:5: ") and "'fr'" in ex["unknown_language"][0]
    assert ex["missing_language"][0].startswith(f"{src}:6: ") and "--default-lang" in ex["missing_language"][0]
    assert ex["text_not_string"][0].startswith(f"{src}:8: ")
    assert ex["invalid_utf8"][0].startswith(f"{tmp_path / 'bin.jsonl'}:1: ")
    err = capsys.readouterr().err
    assert "rejected 8 lines" in err and f"{src}:3: missing_text_key" in err


def test_max_reject_examples(tmp_path, wl):
    src = write_jsonl(tmp_path / "a.jsonl", ["{bad"] * 7)
    assert cli(wl, [src], tmp_path / "x", "--max-reject-examples", "2") == 0
    m = json.loads((tmp_path / "x.manifest.json").read_text())
    assert m["rejected"]["malformed_json"] == 7 and len(m["reject_examples"]["malformed_json"]) == 2


def test_strict_exits_nonzero_and_leaves_nothing(tmp_path, wl, capsys):
    src = write_jsonl(tmp_path / "a.jsonl", [DOCS[0]] * 300 + [{"text": ""}] + [DOCS[0]])
    out = tmp_path / "out"
    assert cli(wl, [src], out / "x", "--strict") == 1
    assert f"{src}:301: empty_document" in capsys.readouterr().err
    assert outputs(out) == [] and not (out / "x.manifest.json").exists()


def test_failure_midway_leaves_no_outputs(tmp_path, wl, monkeypatch):
    src = write_jsonl(tmp_path / "a.jsonl", DOCS * 200)
    real_add, n = pp.LanguageWriter.add, [0]

    def flaky(self, lang, ids, group=0):
        n[0] += 1
        if n[0] == 500:
            raise KeyboardInterrupt
        real_add(self, lang, ids, group)

    monkeypatch.setattr(pp.LanguageWriter, "add", flaky)
    assert cli(wl, [src], tmp_path / "out" / "x") == 130
    assert outputs(tmp_path / "out") == []
    monkeypatch.setattr(pp.LanguageWriter, "add", real_add)
    assert cli(wl, [src], tmp_path / "out" / "x") == 0
    assert outputs(tmp_path / "out") == [f"x_{l}_text_document.{e}" for l in ("en", "ja", "ko") for e in ("bin", "idx")]


def test_failure_during_commit_leaves_no_temps(tmp_path, wl, monkeypatch):
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    # A previous run's complete outputs must not survive beside a failed rerun's new data.
    assert cli(wl, [write_jsonl(tmp_path / "a.jsonl", DOCS[:1])], tmp_path / "out" / "x") == 0
    assert (tmp_path / "out" / "x.manifest.json").exists()

    def boom(self, idx_path):
        raise OSError("disk full")

    monkeypatch.setattr(IndexedDatasetBuilder, "finalize", boom)
    assert cli(wl, [write_jsonl(tmp_path / "a.jsonl", DOCS)], tmp_path / "out" / "x") == 1
    assert outputs(tmp_path / "out") == ["x_en_text_document.bin", "x_en_text_document.idx"]  # untouched
    real_finalize = pp.LanguageWriter.finalize

    def rename_fails(self):
        monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("rename failed")))
        return real_finalize(self)

    monkeypatch.undo()
    monkeypatch.setattr(pp.LanguageWriter, "finalize", rename_fails)
    assert cli(wl, [tmp_path / "a.jsonl"], tmp_path / "out" / "x") == 1
    monkeypatch.undo()
    # The old set is gone (no complete-looking dataset), no temps, no manifest.
    assert outputs(tmp_path / "out") == []
    assert not (tmp_path / "out" / "x.manifest.json").exists()


def test_input_errors(tmp_path, wl, capsys):
    # refused before any work: exit 2 (the error policy); a file that breaks mid-read: exit 1
    assert cli(wl, [tmp_path / "missing.jsonl"], tmp_path / "x") == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    assert cli(wl, [tmp_path / "none*.jsonl"], tmp_path / "x") == 2
    assert "matches no files" in capsys.readouterr().err
    good = gzip.compress(("\n".join(json.dumps(d) for d in DOCS * 50) + "\n").encode())
    (tmp_path / "trunc.jsonl.gz").write_bytes(good[: len(good) // 2])
    assert cli(wl, [tmp_path / "trunc.jsonl.gz"], tmp_path / "x") == 1
    err = capsys.readouterr().err
    assert "trunc.jsonl.gz: cannot read past line" in err and "corrupt or truncated" in err
    z = zstd_bytes = __import__("zstandard").ZstdCompressor().compress(good)
    (tmp_path / "trunc.jsonl.zst").write_bytes(z[: len(zstd_bytes) // 2])
    assert cli(wl, [tmp_path / "trunc.jsonl.zst"], tmp_path / "x") == 1
    assert "trunc.jsonl.zst: cannot read past line" in capsys.readouterr().err
    assert outputs(tmp_path) == []


def test_workers_byte_identical(tmp_path, wl):
    src = write_jsonl(tmp_path / "a.jsonl", [dict(d, text=d["text"] + f" w{i}") for i, d in enumerate(DOCS * 100)])
    reports = []
    for w in (1, 2):
        cfg = pp.PreprocessConfig(input=[str(src)], output_prefix=str(tmp_path / f"w{w}" / "x"),
                                  tokenizer_type="HuggingFaceTokenizer", tokenizer_model=str(wl),
                                  append_eod=True, workers=w, chunk_lines=7, log_interval=0)
        reports.append(cfg.build().run())
    assert reports[0].languages["en"]["documents"] == 200
    for lang in ("en", "ko", "ja"):
        for ext in ("bin", "idx"):
            a = (tmp_path / "w1" / f"x_{lang}_text_document.{ext}").read_bytes()
            assert a == (tmp_path / "w2" / f"x_{lang}_text_document.{ext}").read_bytes()


def test_read_chunks_bounded_and_numbered(tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", [{"i": i} for i in range(10)])
    chunks = list(pp.read_chunks([str(src)], chunk_lines=4))
    assert [(fi, first, len(lines)) for fi, first, lines in chunks] == [(0, 1, 4), (0, 5, 4), (0, 9, 2)]
    assert json.loads(chunks[2][2][1]) == {"i": 9}


def test_lang_id_script_default_and_relabel(tmp_path, wl, capsys):
    src = write_jsonl(tmp_path / "a.jsonl", [
        {"text": "hello world"},                 # no lang -> script -> en
        {"text": "안녕 세계"},                     # -> ko
        {"text": "안녕 세계", "lang": "en"},      # kept as en unless --relabel-lang
        {"text": "1 2 3"},                       # nothing to detect -> --default-lang / rejected
    ])
    assert cli(wl, [src], tmp_path / "a" / "x", "--lang-id", "script") == 0
    m = json.loads((tmp_path / "a" / "x.manifest.json").read_text())
    assert {k: v["documents"] for k, v in m["languages"].items()} == {"en": 2, "ko": 1}
    assert m["rejected"]["undetected_language"] == 1
    assert cli(wl, [src], tmp_path / "b" / "x", "--lang-id", "script", "--relabel-lang", "--default-lang", "en") == 0
    m = json.loads((tmp_path / "b" / "x.manifest.json").read_text())
    assert {k: v["documents"] for k, v in m["languages"].items()} == {"en": 2, "ko": 2}
    assert cli(wl, [src], tmp_path / "c" / "x", "--default-lang", "ja") == 0
    m = json.loads((tmp_path / "c" / "x.manifest.json").read_text())
    assert {k: v["documents"] for k, v in m["languages"].items()} == {"en": 1, "ja": 3}
    capsys.readouterr()
    assert cli(wl, [src], tmp_path / "d" / "x", "--relabel-lang") == 2
    assert "--relabel-lang needs a detector" in capsys.readouterr().err


def test_sentencepiece_through_cli(tmp_path):
    texts = ["hello world this is a test", "안녕하세요 세계"] * 30
    model = train_sentencepiece(tmp_path, texts, vocab_size=60)
    tok = build_tokenizer("SentencePieceTokenizer", model)
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": "hello world", "lang": "en"}])
    assert main(["--input", str(src), "--output-prefix", str(tmp_path / "x"), "--tokenizer-type",
                 "SentencePieceTokenizer", "--tokenizer-model", str(model), "--append-eod"]) == 0
    assert read_back(tmp_path / "x_en_text_document")[1] == [tok.tokenize("hello world") + [tok.eod]]


@pytest.mark.parametrize("n", [100, pytest.param(1000, marks=pytest.mark.slow)])
def test_corpus_round_trip(tmp_path, corpus, n):
    tok_path = train_test_tokenizer(tmp_path, 4000, corpus)
    tok = build_tokenizer("HuggingFaceTokenizer", tok_path)
    docs = {lang: corpus_docs(corpus, lang, n) for lang in CORPUS_LANGS}
    for lang in CORPUS_LANGS:
        write_jsonl(tmp_path / f"c.{lang}.jsonl.gz", docs[lang], "gz")
    assert cli(tok_path, [tmp_path / "c.*.jsonl.gz"], tmp_path / "out" / "x", "--append-eod",
               "--languages", "en,ko,ja,zh", "--workers", "2") == 0
    for lang in CORPUS_LANGS:
        ds, _ = read_back(tmp_path / "out" / f"x_{lang}_text_document")
        assert len(ds) == n
        for i in (0, 57, n - 1):
            ids = ds[i].tolist()
            assert ids[-1] == tok.eod
            assert tok.detokenize(ids[:-1]) == docs[lang][i]["text"]


def test_zst_multi_frame_lines_span_frames(tmp_path):
    import zstandard

    data = b"".join(json.dumps({"i": i}).encode() + b"\n" for i in range(50)) + b'{"i": 50}'  # no final \n
    c = zstandard.ZstdCompressor()
    (tmp_path / "m.jsonl.zst").write_bytes(c.compress(data[:101]) + c.compress(data[101:]))
    lines = [line for _, _, ls in pp.read_chunks([str(tmp_path / "m.jsonl.zst")], chunk_lines=16) for line in ls]
    assert [json.loads(x)["i"] for x in lines] == list(range(51))


# ---- hardening (issue 11 items 1-3, 5, 7, 8; issue 12 item 7) ---------------------------------

def test_lone_surrogates_are_counted_invalid_unicode(tmp_path, wl):
    # A "\ud800" escape and CESU-8 bytes both decode to a lone surrogate the tokenizer rejects.
    (tmp_path / "a.jsonl").write_bytes(
        b'{"text": "hello", "lang": "en"}\n'
        b'{"text": "hello \\ud800 world", "lang": "en"}\n'
        b'{"text": "hello \xed\xa0\x80", "lang": "en"}\n'
        b'{"text": "world", "lang": "en"}\n')
    assert cli(wl, [tmp_path / "a.jsonl"], tmp_path / "x") == 0
    m = json.loads((tmp_path / "x.manifest.json").read_text())
    assert m["rejected"]["invalid_unicode"] == 2 and sum(m["rejected"].values()) == 2
    assert m["reject_examples"]["invalid_unicode"][0].startswith(f"{tmp_path / 'a.jsonl'}:2: invalid_unicode")
    assert "U+D800" in m["reject_examples"]["invalid_unicode"][1]
    assert read_back(tmp_path / "x_en_text_document")[1] == [[2], [3]]


def test_deeply_nested_json_is_a_counted_reject(tmp_path, wl):
    deep = '{"text": "hello", "lang": "en", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}"
    src = write_jsonl(tmp_path / "a.jsonl", [DOCS[0], deep, DOCS[2]])
    assert cli(wl, [src], tmp_path / "x") == 0
    m = json.loads((tmp_path / "x.manifest.json").read_text())
    assert m["rejected"]["malformed_json"] == 1 and m["languages"]["en"]["documents"] == 2
    assert "nested too deeply" in m["reject_examples"]["malformed_json"][0]


def test_language_codes_are_strict_no_path_traversal(tmp_path, wl, capsys):
    out = tmp_path / "out"
    (out / "x_x").mkdir(parents=True)  # the directory the traversal needed
    bad = ["x/../../outside/pwn", "..", "en\n", "en/ko", "e", "english", "en ko", "\u00e9n"]
    src = write_jsonl(tmp_path / "a.jsonl", [DOCS[0]] + [{"text": "hello", "lang": b} for b in bad]
                      + [{"text": "world", "lang": "EN-us"}])
    assert cli(wl, [src], out / "x") == 0
    m = json.loads((out / "x.manifest.json").read_text())
    assert m["rejected"]["invalid_language"] == len(bad) and m["languages"]["en"]["documents"] == 2
    assert not (tmp_path / "outside").exists() and list((out / "x_x").iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["x.manifest.json", "x_en_text_document.bin",
                                                     "x_en_text_document.idx", "x_x"]
    capsys.readouterr()
    assert cli(wl, [src], out / "y", "--default-lang", "../x") == 2
    assert "--default-lang '../x': not a language code" in capsys.readouterr().err
    assert cli(wl, [src], out / "y", "--languages", "en,k/o") == 2
    assert "--languages 'k/o'" in capsys.readouterr().err
    with pytest.raises(pp.PreprocessError, match="not an ISO 639 code"):
        pp.output_prefix_for("x", "../a")


def test_rerun_with_fewer_languages_removes_the_old_ones(tmp_path, wl, capsys):
    out = tmp_path / "out"
    (out).mkdir()
    # A neighbouring prefix whose names start like ours must survive (x_en is not a language of x).
    assert cli(wl, [write_jsonl(tmp_path / "n.jsonl", [DOCS[1]])], out / "x_en") == 0
    assert cli(wl, [write_jsonl(tmp_path / "a.jsonl", DOCS)], out / "x") == 0
    capsys.readouterr()
    assert cli(wl, [write_jsonl(tmp_path / "b.jsonl", DOCS[:1])], out / "x") == 0
    err = capsys.readouterr().err
    assert f"removed {out / 'x_ko_text_document.bin'}: not part of this run's output set" in err
    assert outputs(out) == ["x_en_ko_text_document.bin", "x_en_ko_text_document.idx",
                            "x_en_text_document.bin", "x_en_text_document.idx"]
    assert list(json.loads((out / "x.manifest.json").read_text())["languages"]) == ["en"]


def test_max_doc_chars_is_a_counted_reject(tmp_path, wl):
    long_doc = {"text": " ".join(["hello"] * 400), "lang": "en"}  # 2399 characters
    huge_line = json.dumps({"text": "hello " * 200_000, "lang": "en"})  # > 12 B/char * 1000 + 1 MiB
    src = write_jsonl(tmp_path / "a.jsonl", [DOCS[0], long_doc, DOCS[2]])
    (tmp_path / "b.jsonl").write_text(huge_line + "\n")
    assert cli(wl, [src, tmp_path / "b.jsonl"], tmp_path / "x", "--max-doc-chars", "1000") == 0
    m = json.loads((tmp_path / "x.manifest.json").read_text())
    assert m["rejected"]["document_too_long"] == 2 and m["languages"]["en"]["documents"] == 2
    assert "2399 characters > --max-doc-chars 1000" in m["reject_examples"]["document_too_long"][0]
    assert f"b.jsonl:1: document_too_long: line of {len(huge_line) + 1} bytes" in m["reject_examples"]["document_too_long"][1]
    assert cli(wl, [src], tmp_path / "y", "--max-doc-chars", "0") == 0  # 0: no cap
    assert json.loads((tmp_path / "y.manifest.json").read_text())["languages"]["en"]["documents"] == 3


def test_directory_and_empty_inputs(tmp_path, wl, capsys):
    (tmp_path / "d").mkdir()
    assert cli(wl, [tmp_path / "d"], tmp_path / "x") == 2
    assert f"--input {tmp_path / 'd'}: is a directory; pass its files or a glob" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_bytes(b"\n\n")
    assert cli(wl, [tmp_path / "empty.jsonl", tmp_path / "blank.jsonl"], tmp_path / "x") == 0
    err = capsys.readouterr().err
    assert f"warning: {tmp_path / 'empty.jsonl'}: no documents (the file is empty" in err
    assert f"warning: {tmp_path / 'blank.jsonl'}: no documents" in err
    assert f"warning: no documents were written for --output-prefix {tmp_path / 'x'}" in err


def test_json_keys_several_keys_stay_aligned(tmp_path, wl):
    src = write_jsonl(tmp_path / "a.jsonl", [
        {"text": "hello world", "title": "world", "lang": "en"},
        {"text": "hello", "lang": "en"},                             # no title: the whole line is rejected
        {"text": "안녕", "title": "세계 세계", "lang": "ko"},
    ])
    assert cli(wl, [src], tmp_path / "x", "--json-keys", "text", "title", "--append-eod") == 0
    assert read_back(tmp_path / "x_en_text_document")[1] == [[2, 3, 0]]
    assert read_back(tmp_path / "x_en_title_document")[1] == [[3, 0]]
    assert read_back(tmp_path / "x_ko_title_document")[1] == [[5, 5, 0]]
    m = json.loads((tmp_path / "x.manifest.json").read_text())
    assert m["json_keys"] == ["text", "title"] and m["rejected"]["missing_text_key"] == 1
    assert m["languages"]["ko"]["keys"]["title"]["tokens"] == 3 and m["languages"]["ko"]["tokens"] == 2


def test_misspelt_and_abbreviated_flags_are_named(tmp_path, wl, capsys):
    base = ["--input", "a.jsonl", "--tokenizer-type", "HuggingFaceTokenizer", "--tokenizer-model", str(wl)]
    for argv, bad, hint in ((base + ["--ouput-prefix", "x"], "--ouput-prefix", "--output-prefix"),
                            (base + ["--output-prefix", "x", "--worker", "2"], "--worker", "--workers")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert f"{bad} (did you mean {hint}" in err and "required" not in err


def test_help_has_a_line_and_default_for_every_flag(capsys):
    from xlda.cli.preprocess import build_parser

    parser = build_parser()
    for a in parser._actions:
        assert a.help, f"{a.option_strings} has no help"
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("(default: 4000000)", "Number of worker processes to launch (default: 1)",
                 "Path to binary output file without suffix", "(default: ['text'])"):
        assert text in out
