"""The corpus-built post-training data: valid records, deterministic, split by page, and rendered
with a real byte-level BPE tokenizer the loss mask covers exactly the answers."""
import json

from xlda.posttrain.chat import ChatRenderer, check_messages
from xlda.posttrain.make_data import BUNDLED, bundled_inputs, make


def _read(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_make_posttrain_data_from_corpus(corpus, tmp_path):
    from tests.data.fixtures import train_test_tokenizer

    counts = make(bundled_inputs(corpus), tmp_path / "a", BUNDLED["spec"], per_lang=15, seed=3)
    make(bundled_inputs(corpus), tmp_path / "b", BUNDLED["spec"], per_lang=15, seed=3)
    for name in counts:
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == \
            (tmp_path / "b" / f"{name}.jsonl").read_bytes()
    assert counts["sft.train"] + counts["sft.valid"] == 60
    sft = _read(tmp_path / "a" / "sft.train.jsonl")
    dpo = _read(tmp_path / "a" / "dpo.train.jsonl")
    assert {r["lang"] for r in sft} == {"en", "ko", "ja", "zh"}
    for r in sft:
        check_messages(r["messages"])
    assert all(r["chosen"] != r["rejected"] for r in dpo)
    assert {r["rejected_kind"] for r in dpo} <= {"other_language", "shuffled"}
    from xlda.posttrain import make_data

    texts = [*make_data.QUESTION.values(), *make_data.SYSTEM.values(), *make_data.MORE.values()]
    assert not any("LibreOffice" in t for t in texts)  # the prompts name no corpus
    assert any(m["content"] == make_data.SYSTEM[r["lang"]] for r in sft for m in r["messages"])
    valid = {r["source"] for r in _read(tmp_path / "a" / "sft.valid.jsonl")}
    assert valid and not valid & {r["source"] for r in sft}

    tok = train_test_tokenizer(tmp_path, vocab_size=800, corpus_dir=corpus, docs_per_lang=30,
                               chat=True)
    r = ChatRenderer(str(tok))
    for rec in sft[:20]:
        out = r.render(rec["messages"])
        got = r.tok.decode([t for t, m in zip(out.ids, out.assistant) if m])
        want = "".join(m["content"] + "<|im_end|>\n" for m in rec["messages"]
                       if m["role"] == "assistant")
        assert got == want


def _tool_main():
    import importlib.util

    from xlda.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location(
        "make_posttrain_data", f"{REPO_ROOT}/tools/make_posttrain_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def test_any_corpus_with_a_group_key(tmp_path):
    from tests.data.fixtures import write_jsonl
    main = _tool_main()

    en = write_jsonl(tmp_path / "en.jsonl", [
        {"body": "Backups\nCopy the files.\nKeep two copies.", "page": "doc/a"},
        {"body": "Networks\nPlug the cable.\nCheck the light.", "page": "doc/b"}])
    de = write_jsonl(tmp_path / "de.jsonl", [
        {"body": "Sicherung\nKopiere die Dateien.\nBehalte zwei Kopien.", "page": "doc/a"}])
    out = tmp_path / "out"
    assert main(["--input", f"en={en}", "--input", f"de={de}", "--text-key", "body",
                 "--group-key", "page", "--valid-percent", "0", "--output", str(out)]) == 0
    sft = _read(out / "sft.train.jsonl")
    dpo = _read(out / "dpo.train.jsonl")
    assert [(r["lang"], r["source"]) for r in sft] == [("en", "doc/a"), ("en", "doc/b"),
                                                       ("de", "doc/a")]
    users = [m["content"] for r in sft for m in r["messages"] if m["role"] == "user"]
    # title = first line; de has no prompts of its own: asked in English
    assert 'What does the document "Backups" say?' in users
    assert 'What does the document "Sicherung" say?' in users
    first = next(m for m in sft[0]["messages"] if m["role"] == "assistant")
    assert first["content"] == "Copy the files.\nKeep two copies."
    # doc/a has a translation: its other-language version is the rejected answer
    by = {(r["lang"], r["source"]): r for r in dpo}
    assert by[("en", "doc/a")]["rejected"] == "Kopiere die Dateien.\nBehalte zwei Kopien."
    assert by[("en", "doc/a")]["rejected_kind"] == "other_language"
    assert by[("en", "doc/b")]["rejected_kind"] == "shuffled"


def test_bad_input_names_file_and_line(tmp_path, capsys):
    from tests.data.fixtures import write_jsonl
    main = _tool_main()

    f = write_jsonl(tmp_path / "en.jsonl", [{"text": "a\nb\nc", "page": "x"}, {"text": "a"}])
    assert main(["--input", f"en={f}", "--group-key", "page", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"make_posttrain_data: error: {f}:2: no field 'page' (--group-key)"
    assert main(["--input", "en", "--output", str(tmp_path / "o")]) == 2
    assert "expected LANG=PATH" in capsys.readouterr().err
