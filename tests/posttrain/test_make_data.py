"""The corpus-built post-training data: valid records, deterministic, split by page, and rendered
with a real byte-level BPE tokenizer the loss mask covers exactly the answers."""
import json

from xlda.posttrain.chat import ChatRenderer, check_messages
from xlda.posttrain.make_data import make


def _read(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_make_posttrain_data_from_corpus(corpus, tmp_path):
    from tests.data.fixtures import train_test_tokenizer

    counts = make(corpus, tmp_path / "a", per_lang=15, seed=3)
    make(corpus, tmp_path / "b", per_lang=15, seed=3)
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
    valid = {r["source"] for r in _read(tmp_path / "a" / "sft.valid.jsonl")}
    assert valid and not valid & {r["source"] for r in sft}

    tok = train_test_tokenizer(tmp_path, vocab_size=800, corpus_dir=corpus, docs_per_lang=30)
    r = ChatRenderer(str(tok))
    for rec in sft[:20]:
        out = r.render(rec["messages"])
        got = r.tok.decode([t for t, m in zip(out.ids, out.assistant) if m])
        want = "".join(m["content"] + "<|im_end|>\n" for m in rec["messages"]
                       if m["role"] == "assistant")
        assert got == want
