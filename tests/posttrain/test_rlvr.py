"""RLVR: prompts and bad records, rows of prompt + completion, the flags' checks, a tiny SFT'd
model learns two-number addition from its own rollouts, the loss is normalised over the step's
tokens (not per micro-batch), and resume is bit-exact (the rollout round and the KL reference
included)."""
import pytest

from tests.data.fixtures import write_jsonl
from tests.posttrain.fixtures import chat_tokenizer, rlvr_records, sft_records, tiny_cfg, vocab_id

quiet = lambda *a, **k: None  # noqa: E731
ALL_PAIRS = [(a, b) for a in range(10) for b in range(10)]


def test_prompts_and_bad_records_counted(tmp_path):
    from xlda.posttrain.chat import ChatRenderer
    from xlda.posttrain.records import BadRecords
    from xlda.posttrain.rlvr_data import read_prompts

    tok = chat_tokenizer(tmp_path)
    good = rlvr_records([(1, 2), (3, 4)])
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [good[0], {"answer": "n1"}, {"prompt": "  "},
                       {"messages": [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "n1"}]},
                       {"prompt": [{"role": "user"}]}, {"prompt": "hi " * 40}, good[1]])
    with open(path, "a") as f:
        f.write("{not json\n")
    r = ChatRenderer(str(tok))
    bad = BadRecords()
    got = read_prompts([path], r, 30, bad)
    assert [g.record["answer"] for g in got] == ["n3", "n7"]
    # <|im_start|> user what is n1 plus n2 <|im_end|> <|im_start|> assistant
    assert got[0].ids == [1, vocab_id("user"), vocab_id("what"), vocab_id("is"), vocab_id("n1"),
                          vocab_id("plus"), vocab_id("n2"), 2, 1, vocab_id("assistant")]
    assert got[1].ids[4:7] == [vocab_id("n3"), vocab_id("plus"), vocab_id("n4")]
    assert dict(bad.counts) == {"no_prompt": 2, "wrong_roles": 1, "bad_message": 1,
                                "too_long": 1, "bad_json": 1}
    assert "p.jsonl:8" in bad.summary() and "p.jsonl:6" in bad.summary()


def test_rows_by_hand():
    from xlda.posttrain.rlvr_task import build_rows

    rows = build_rows([[5, 6, 7], [4]], [[8, 9], [3, 2, 1, 0, 6, 5]], S=6, pad=0)
    assert rows["tokens"].tolist() == [[5, 6, 7, 8, 0, 0], [4, 3, 2, 1, 0, 6]]
    assert rows["labels"].tolist() == [[6, 7, 8, 9, 0, 0], [3, 2, 1, 0, 6, 5]]
    assert rows["loss_mask"].tolist() == [[0, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]
    assert rows["doc_ids"].tolist() == [[0, 0, 0, 0, 1, 1], [0] * 6]
    with pytest.raises(ValueError, match="exceed"):
        build_rows([[5, 6, 7]], [[1, 2, 3, 4, 5]], S=6, pad=0)


@pytest.mark.parametrize("flags, match", [
    (["--num-generations", "1"], "num-generations must be >= 2"),
    (["--num-generations", "3"], "not a multiple of --num-generations"),
    (["--max-completion-length", "64"], "max-completion-length 64"),
    (["--top-p", "0"], "top-p"),
    (["--epsilon", "1"], "--epsilon must"),
    (["--beta", "-1"], "--beta must"),
    (["--loss-type", "ppo"], "--loss-type 'ppo'"),
    (["--scale-rewards", "max"], "--scale-rewards"),
    (["--reward-funcs", "exact", "--reward-weights", "1", "2"], "--reward-weights has 2"),
    (["--sequence-parallel", "--tensor-model-parallel-size", "2"], "sequence-parallel"),
    (["--position-embedding-type", "learned_absolute"], "exact only with RoPE"),
    (["--mtp-num-layers", "1", "--mtp-loss-scaling-factor", "0.1"],
     "--mtp-loss-scaling-factor 0.1 > 0"),
])
def test_bad_flags_are_refused(tmp_path, capsys, flags, match):
    from xlda.posttrain.cli import main

    tok = chat_tokenizer(tmp_path)
    data = write_jsonl(tmp_path / "p.jsonl", rlvr_records([(1, 2)]))
    base = ["rlvr", "--tokenizer-model", str(tok), "--data-path", str(data), "--seq-length", "64",
            "--num-layers", "2", "--hidden-size", "32", "--num-attention-heads", "4",
            "--micro-batch-size", "2", "--global-batch-size", "8", "--train-iters", "1",
            "--max-completion-length", "8"]
    assert main(base + ["--print-config"]) == 0
    capsys.readouterr()
    assert main(base + flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("posttrain: error: ") and match in err


def test_flags_reach_the_config(tmp_path):
    from xlda.posttrain.cli import resolve

    tok = chat_tokenizer(tmp_path)
    data = write_jsonl(tmp_path / "p.jsonl", rlvr_records([(1, 2)]))
    cfg, _, _ = resolve(["rlvr", "--tokenizer-model", str(tok), "--data-path", str(data),
                         "--seq-length", "64", "--global-batch-size", "16",
                         "--micro-batch-size", "4", "--num-generations", "4", "--beta", "0.04",
                         "--epsilon", "0.1", "--epsilon-high", "0.3", "--temperature", "0.7",
                         "--top-p", "0.95", "--max-completion-length", "8",
                         "--reward-funcs", "accuracy", "format", "--reward-weights", "1", "0.5",
                         "--scale-rewards", "none", "--loss-type", "grpo",
                         "--dynamic-sampling", "--num-iterations", "2",
                         "--rollout-micro-batch-size", "4"])
    p = cfg.posttrain
    assert (p.stage, p.num_generations, p.beta, p.epsilon, p.epsilon_high, p.temperature,
            p.top_p, p.max_completion_length, p.reward_funcs, p.reward_weights, p.scale_rewards,
            p.loss_type, p.dynamic_sampling, p.num_iterations, p.rollout_micro_batch_size) == (
        "rlvr", 4, 0.04, 0.1, 0.3, 0.7, 0.95, 8, ["accuracy", "format"], [1.0, 0.5], "none",
        "grpo", True, 2, 4)


# -- runs ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sft_start(tmp_path_factory):
    """A tiny model SFT'd for 150 steps on 'what is nA plus nB' -> n((A+B)%10): right about
    a third of the time, and it has learned the answer format."""
    from xlda import quiet as q
    from xlda.posttrain.cli import build_trainer

    q.install_cpu()
    tmp = tmp_path_factory.mktemp("rlvr")
    tok = chat_tokenizer(tmp)
    sft = write_jsonl(tmp / "sft.jsonl", sft_records(200, 0))
    cfg = tiny_cfg(tmp, tok, sft, iters=150)
    _model(cfg)
    cfg.training.global_batch_size = 16
    cfg.checkpoint.save = str(tmp / "sft")
    build_trainer(cfg, print_fn=quiet).setup().train()
    import random

    rng = random.Random(1)
    train = write_jsonl(tmp / "rl.jsonl", rlvr_records([rng.choice(ALL_PAIRS) for _ in range(64)]))
    valid = write_jsonl(tmp / "rl_valid.jsonl", rlvr_records(ALL_PAIRS))
    return tmp, tok, train, valid


def _model(cfg):
    cfg.model.hidden_size, cfg.model.ffn_hidden_size = 64, 128
    cfg.model.hidden_dropout = cfg.model.attention_dropout = 0.0


def _rlvr_cfg(start, iters, **post):
    tmp, tok, train, valid = start
    post = {"reward_funcs": ["exact"], "num_generations": 8, "max_completion_length": 4, **post}
    cfg = tiny_cfg(tmp, tok, train, valid=valid, stage="rlvr", iters=iters, **post)
    _model(cfg)
    cfg.posttrain.pretrained_checkpoint = str(tmp / "sft")
    cfg.training.global_batch_size, cfg.training.micro_batch_size = 64, 16
    cfg.optimizer.lr = cfg.optimizer.min_lr = 1e-3
    return cfg


def test_rlvr_raises_the_reward_of_a_tiny_sft_model(sft_start):
    """80 GRPO steps of 8 prompts x 8 completions at temperature 1: the mean reward of the
    rollouts rises by more than 0.1 (about 0.34 -> 0.5: the policy sharpens onto the answers
    it finds rewarded), and the greedy reward on all 100 sums does not fall."""
    from xlda.posttrain.cli import build_trainer

    cfg = _rlvr_cfg(sft_start, 80)
    tr = build_trainer(cfg, print_fn=quiet).setup()
    before = tr.evaluate()
    res = tr.train()
    after = tr.evaluate()
    curve = [h["reward"] for h in res.history]
    first, last = sum(curve[:10]) / 10, sum(curve[-10:]) / 10
    print(f"greedy reward {before['reward']:.3f} -> {after['reward']:.3f}; sampled reward "
          f"(10-step means) {first:.3f} -> {last:.3f}")
    assert last >= first + 0.1
    assert after["reward"] >= before["reward"] - 0.05
    h = res.history[-1]
    assert h["rollout_s"] > 0 and h["train_s"] > 0 and h["rollout_tokens_per_s"] > 0
    assert 0 <= h["frac_reward_zero_std"] <= 1 and h["completion_length"] >= 1


def test_loss_is_normalised_over_the_step_not_the_micro_batch(sft_start):
    """One step's loss and gradient are the same with 1 or 4 micro-batches (DAPO's token-level
    normalisation over every completion token of the step; per micro-batch means would differ
    as the completions' lengths differ)."""
    from xlda.posttrain.cli import build_trainer

    out = []
    for mbs in (64, 16):
        cfg = _rlvr_cfg(sft_start, 1, num_iterations=2)  # scored old log-probs: ratios != 1 later
        cfg.training.micro_batch_size = mbs
        h = build_trainer(cfg, print_fn=quiet).setup().train().history[0]
        out.append((h["grpo loss"], h["grad_norm"], h["reward"]))
    assert out[0] == pytest.approx(out[1], rel=1e-5)


def test_rlvr_resume_bit_exact(sft_start, tmp_path):
    """--num-iterations 2 (the round's rows come back from the checkpoint at an odd stop) and
    --beta > 0 (the KL reference is re-read from the start checkpoint on resume)."""
    from xlda.posttrain.cli import build_trainer

    def run(save=None, exit_interval=None):
        cfg = _rlvr_cfg(sft_start, 6, num_iterations=2, beta=0.04)
        cfg.checkpoint.save, cfg.training.exit_interval = save, exit_interval
        tr = build_trainer(cfg, print_fn=quiet).setup()
        return tr, tr.train()

    keys = ("grpo loss", "reward", "kl", "grad_norm", "clip_ratio_region", "completion_length")
    hist = lambda r: [tuple(h[k] for k in keys) for h in r.history]  # noqa: E731
    _, straight = run()
    save = str(tmp_path / "ck")
    _, first = run(save, exit_interval=3)
    tr, second = run(save)
    assert tr.resumed and first.exit_reason == "exit_interval"
    assert hist(first) + hist(second) == hist(straight)
    assert any(h[2] > 0 for h in hist(straight))  # the policy moved away from the reference
