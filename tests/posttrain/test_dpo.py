"""DPO: the loss equals TRL's on fixed log-probs, a tiny run raises reward accuracy on its
training pairs, the reference cache is keyed and reused, resume is bit-exact."""
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.data.fixtures import write_jsonl
from tests.posttrain.fixtures import chat_tokenizer, dpo_records, tiny_cfg
from xlda.posttrain.dpo_loss import dpo_sigmoid

quiet = lambda *a, **k: None  # noqa: E731


def _trl_loss(pc, pr, rc, rr, beta):
    """TRL's DPOTrainer._compute_loss (loss_type sigmoid, precomputed reference log-probs) run
    on a stand-in model whose per-token log-probs sum to the given sequence log-probs."""
    trl = pytest.importorskip("trl")
    P, L = len(pc), 5
    mask = torch.zeros(2 * P, L, dtype=torch.long)
    mask[:, 2:] = 1  # completion tokens 2..4: the shifted mask has 3 per row
    per_token = torch.cat([pc, pr])[:, None].repeat(1, L - 1) / 3 * mask[:, 1:]

    class Model:
        training = True

        def __call__(self, **kw):
            z = torch.zeros(2 * P, L - 1)
            return SimpleNamespace(log_probs=per_token, entropy=z, mean_logits=z,
                                   is_top1=z.bool())

    acc = SimpleNamespace(device=torch.device("cpu"), gather=lambda t: t,
                          gather_for_metrics=lambda t: t)
    me = SimpleNamespace(model=Model(), accelerator=acc, aux_loss_enabled=False, ld_alpha=None,
                         precompute_ref_logps=True, f_divergence_type="reverse_kl",
                         loss_types=["sigmoid"], loss_weights=[1.0], beta=beta,
                         use_weighting=False, _metrics=defaultdict(lambda: defaultdict(list)),
                         _total_train_tokens=0, _tp_size=1)
    inputs = {"input_ids": torch.ones(2 * P, L, dtype=torch.long),
              "attention_mask": torch.ones(2 * P, L, dtype=torch.long), "completion_mask": mask,
              "ref_chosen_logps": rc, "ref_rejected_logps": rr}
    loss = trl.DPOTrainer._compute_loss(me, me.model, inputs, return_outputs=False)
    return loss, me._metrics["train"]


def test_dpo_loss_equals_trl():
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (-20 * torch.rand(8, generator=g, dtype=torch.float64) for _ in range(4))
    beta = 0.1
    ours = dpo_sigmoid(pc, pr, rc, rr, beta)
    trl_loss, metrics = _trl_loss(pc, pr, rc, rr, beta)
    torch.testing.assert_close(ours["losses"].mean(), trl_loss, rtol=1e-12, atol=1e-12)
    assert ours["margins"].mean().item() == pytest.approx(metrics["rewards/margins"][0], abs=1e-12)
    assert ours["accuracies"].mean().item() == metrics["rewards/accuracies"][0]
    # and the formula by hand on one pair: -log sigmoid(0.5 * ((-1 - -2) - (-3 - -1)))
    one = dpo_sigmoid(*(torch.tensor([x]) for x in (-1.0, -3.0, -2.0, -1.0)), 0.5)
    assert one["losses"].item() == pytest.approx(-np.log(1 / (1 + np.exp(-1.5))))


@pytest.fixture()
def dpo_data(tmp_path):
    tok = chat_tokenizer(tmp_path)
    train = write_jsonl(tmp_path / "pairs.jsonl", dpo_records(24, seed=0))
    return tok, train


def _cfg(tmp_path, tok, train, **kw):
    cfg = tiny_cfg(tmp_path, tok, train, stage="dpo", dpo_beta=0.5, **kw)
    cfg.optimizer.lr = 3e-3
    return cfg


def test_tiny_dpo_raises_reward_accuracy(dpo_data, tmp_path):
    from xlda.posttrain.cli import build_trainer

    tok, train = dpo_data
    cfg = _cfg(tmp_path, tok, train, iters=24)
    tr = build_trainer(cfg, print_fn=quiet).setup()
    before = tr.task.pair_metrics(tr, tr.task.pairs)
    assert before["reward_accuracy"] == 0.0 and before["dpo loss"] == pytest.approx(np.log(2))
    result = tr.train()
    after = tr.task.pair_metrics(tr, tr.task.pairs)
    # from 0 (policy == reference: every margin is exactly 0); measured 0.875, margin 0.85
    assert after["reward_accuracy"] >= 0.75 and after["reward_margin"] > 0.4, after
    assert after["dpo loss"] < np.log(2) - 0.1
    assert {"reward_accuracy", "reward_margin"} <= set(result.history[-1])
    # the reference log-probs were written next to the data and are reused
    caches = list(tmp_path.glob("pairs.jsonl.ref_logps.*.npz"))
    assert len(caches) == 1
    lines = []
    build_trainer(_cfg(tmp_path, tok, train), print_fn=lines.append).setup()
    assert any("(cached)" in line for line in lines)


def test_dpo_resume_bit_exact(dpo_data, tmp_path):
    from xlda.posttrain.cli import build_trainer
    from xlda.training.config import ConfigError

    tok, train = dpo_data

    def run(**ck):
        cfg = _cfg(tmp_path, tok, train, iters=6)
        cfg.training.exit_interval = ck.pop("exit_interval", None)
        for k, v in ck.items():
            setattr(cfg.checkpoint, k, v)
        tr = build_trainer(cfg, print_fn=quiet).setup()
        return tr, tr.train()

    def hist(r):
        return [(h["dpo loss"], h["reward_accuracy"], h["reward_margin"]) for h in r.history]

    _, straight = run()
    save = str(tmp_path / "ckpt")
    _, first = run(save=save, exit_interval=3)
    tr, second = run(save=save)
    assert tr.resumed and first.exit_reason == "exit_interval"
    assert hist(first) + hist(second) == hist(straight)
    for f in tmp_path.glob("pairs.jsonl.ref_logps.*.npz"):
        f.unlink()
    with pytest.raises(ConfigError, match="resumes from"):
        run(save=save)


def test_bad_pairs_counted_per_reason(tmp_path):
    from xlda.posttrain.chat import ChatRenderer
    from xlda.posttrain.dpo_data import tokenize_pairs
    from xlda.posttrain.records import BadRecords

    tok = chat_tokenizer(tmp_path)
    good = dpo_records(2, seed=0)
    path = write_jsonl(tmp_path / "pairs.jsonl", [
        good[0],
        {"prompt": "hi", "chosen": "yes"},
        {"prompt": "hi", "chosen": "yes", "rejected": "yes"},
        {"prompt": "hi", "chosen": [{"role": "user", "content": "yes"}], "rejected": "no"},
        {"prompt": "hi", "chosen": "yes " * 80, "rejected": "no"},
        {"prompt": "hi", "chosen": 3, "rejected": "no"},
        good[1],
    ])
    bad = BadRecords()
    pairs = tokenize_pairs([path], ChatRenderer(str(tok)), 64, bad)
    assert len(pairs) == 2
    assert dict(bad.counts) == {"bad_pair": 2, "same_response": 1, "wrong_roles": 1,
                                "over_length": 1}
    assert [w.split(" ")[0] for w in bad.where["bad_pair"]] == [f"{path}:2", f"{path}:6"]
    # the response mask of a pair: only the answer and its <|im_end|>, not the prompt
    chosen, rejected = pairs[0]
    assert chosen.assistant.sum() == 2 and rejected.assistant.sum() == 2
    assert list(chosen.assistant[-2:]) == [1, 1] and not chosen.assistant[:-2].any()
