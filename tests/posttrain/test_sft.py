"""SFT end to end in one process: packing with the document mask equals running each
conversation alone, held-out assistant loss drops, resume is bit-exact, bad records counted."""

import pytest
import torch

from tests.data.fixtures import write_jsonl
from tests.posttrain.fixtures import chat_tokenizer, sft_records, tiny_cfg
from xlda.posttrain.cli import build_trainer

quiet = lambda *a, **k: None  # noqa: E731


@pytest.fixture()
def sft_data(tmp_path):
    tok = chat_tokenizer(tmp_path)
    train = write_jsonl(tmp_path / "train.jsonl", sft_records(64, seed=0))
    valid = write_jsonl(tmp_path / "valid.jsonl", sft_records(16, seed=1))
    return tok, train, valid


def test_packed_equals_each_conversation_alone(sft_data, tmp_path):
    from xlda.posttrain.sft_data import build_sample

    tok, train, _ = sft_data
    cfg = tiny_cfg(tmp_path, tok, train)
    cfg.model.hidden_dropout = cfg.model.attention_dropout = 0.0
    tr = build_trainer(cfg, print_fn=quiet).setup()
    ds = tr.data.main.dataset
    k = next(i for i, b in enumerate(ds.bins) if len(b) >= 3)  # a sample of >= 3 conversations
    model = tr.model_chunks[0]
    model.eval()

    def per_token(sample):
        b = {key: v[None] for key, v in sample.items()}
        mask = cfg.model.mask_params(b["doc_ids"], b["lang_ids"])
        with torch.no_grad():
            return model(b["tokens"], b["position_ids"], mask, labels=b["labels"])[0]

    packed = ds[k]
    lp = per_token(packed)
    pos = 0
    for j in ds.bins[k]:
        conv = ds.convs[j]
        n = len(conv.ids)
        alone = build_sample([conv], cfg.data.seq_length, ds.pad_id)
        la = per_token(alone)
        m = alone["loss_mask"][:n].bool()
        assert torch.equal(packed["loss_mask"][pos:pos + n], alone["loss_mask"][:n])
        assert m.any()
        torch.testing.assert_close(lp[pos:pos + n][m], la[:n][m], rtol=1e-5, atol=1e-5)
        pos += n
    # and the document mask matters: a causal mask over the pack changes the later conversations
    cmask = cfg.model.mask_params(packed["doc_ids"][None] * 0, packed["lang_ids"][None])
    with torch.no_grad():
        lc = model(packed["tokens"][None], packed["position_ids"][None], cmask,
                   labels=packed["labels"][None])[0]
    assert not torch.allclose(lc[pos - 4:pos], lp[pos - 4:pos])


def test_tiny_sft_lowers_heldout_assistant_loss(sft_data, tmp_path):
    tok, train, valid = sft_data
    cfg = tiny_cfg(tmp_path, tok, train, valid, iters=30)
    cfg.training.eval_iters = 2
    tr = build_trainer(cfg, print_fn=quiet).setup()
    before = tr.evaluate()["lm loss"]
    tr.train()
    after = tr.evaluate()["lm loss"]
    assert after < before - 1.0, (before, after)


def test_sft_resume_bit_exact(sft_data, tmp_path):
    tok, train, _ = sft_data

    def losses(result):
        return [h["lm loss"] for h in result.history]

    straight = build_trainer(tiny_cfg(tmp_path, tok, train, iters=6), print_fn=quiet).setup().train()
    save = str(tmp_path / "ckpt")
    cfg = tiny_cfg(tmp_path, tok, train, iters=6)
    cfg.checkpoint.save = save
    cfg.training.exit_interval = 3
    first = build_trainer(cfg, print_fn=quiet).setup().train()
    cfg = tiny_cfg(tmp_path, tok, train, iters=6)
    cfg.checkpoint.save = save  # the same command again: resumes from --save
    again = build_trainer(cfg, print_fn=quiet).setup()
    assert again.resumed and again.iteration == 3
    second = again.train()
    assert first.exit_reason == "exit_interval"
    assert losses(first) + losses(second) == losses(straight)


def test_bad_records_counted_per_reason_and_strict(tmp_path):
    from xlda.posttrain.chat import ChatRenderer
    from xlda.posttrain.records import BadRecords
    from xlda.posttrain.sft_data import tokenize_conversations

    tok = chat_tokenizer(tmp_path)
    good = sft_records(2, seed=0)
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        good[0],
        {"messages": [{"role": "assistant", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]},
        "{not json",
        {"messages": [{"role": "user", "content": "hi " * 80}, {"role": "assistant", "content": "yes"}]},
        good[1],
    ])
    r = ChatRenderer(str(tok))
    bad = BadRecords()
    convs = tokenize_conversations([path], r, 64, bad)
    assert len(convs) == 2
    assert dict(bad.counts) == {"wrong_roles": 1, "empty_assistant": 1, "bad_json": 1,
                                "over_length": 1}
    assert bad.where["over_length"][0].startswith(f"{path}:5 ")
    assert bad.where["wrong_roles"][0].startswith(f"{path}:2 ")
    with pytest.raises(ValueError, match=f"{path}:2: wrong_roles"):
        tokenize_conversations([path], r, 64, BadRecords(strict=True))
