"""Hand-built tokenizers and conversations for the post-training tests."""
from __future__ import annotations

from pathlib import Path

from tests.data.fixtures import EOD, word_level_tokenizer

CHATML = ("<|im_start|>", "<|im_end|>")
WORDS = [*[f"n{i}" for i in range(10)], "system", "user", "assistant", "hi", "there", "hello", "how", "are", "you", "fine",
         "thanks", "be", "brief", "what", "is", "two", "plus", "four", "yes", "no", "bad", "good"]


def chat_tokenizer(tmp_path, extra_words=()) -> Path:
    """WordLevel tokenizer.json: EOD + ChatML specials, [UNK], then WORDS (ids in that order)."""
    return word_level_tokenizer(tmp_path, [*WORDS, *extra_words], specials=(EOD, *CHATML),
                                name="tokenizer.json")


def vocab_id(word: str) -> int:
    order = [EOD, *CHATML, "[UNK]", *WORDS]
    return order.index(word)


NUMS = [f"n{i}" for i in range(10)]


def sft_records(n: int, seed: int) -> list:
    """Conversations with a learnable answer: 'what is nA plus nB' -> 'n((A+B)%10)'."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        turns = []
        if rng.random() < 0.3:
            turns.append({"role": "system", "content": "be brief"})
        for _ in range(rng.randint(1, 2)):
            a, b = rng.randrange(10), rng.randrange(10)
            turns.append({"role": "user", "content": f"what is n{a} plus n{b}"})
            turns.append({"role": "assistant", "content": f"n{(a + b) % 10}"})
        out.append({"messages": turns})
    return out


def tiny_cfg(tmp_path, tok, train, valid=None, stage="sft", iters=8, **post):
    """A tiny post-training run config (CPU, one process)."""
    from xlda.model.recipes import tiny
    from xlda.posttrain.config import PostRunConfig, PostTrainSettings

    cfg = PostRunConfig(model=tiny(seq_length=64, num_layers=2, hidden_size=32,
                                   num_attention_heads=4, num_query_groups=2,
                                   ffn_hidden_size=64, hidden_dropout=0.1,
                                   attention_dropout=0.1))
    cfg.model.attention_mask_type = "document"
    cfg.data.seq_length = 64
    cfg.data.tokenizer_type = "HuggingFaceTokenizer"
    cfg.data.tokenizer_model = str(tok)
    cfg.posttrain = PostTrainSettings(stage=stage, data_path=[str(train)],
                                      valid_data_path=[str(valid)] if valid else None, **post)
    t = cfg.training
    t.train_iters, t.micro_batch_size, t.global_batch_size, t.seed = iters, 2, 4, 1234
    cfg.optimizer.lr, cfg.optimizer.min_lr, cfg.optimizer.weight_decay = 3e-3, 3e-4, 0.0
    cfg.scheduler.lr_decay_style = "constant"
    return cfg


def dpo_records(n: int, seed: int) -> list:
    """Pairs: chosen = the right sum, rejected = a wrong one (string and message-list forms)."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randrange(10), rng.randrange(10)
        good, wrong = (a + b) % 10, (a + b + rng.randint(1, 9)) % 10
        prompt = f"what is n{a} plus n{b}"
        if i % 2:
            out.append({"prompt": [{"role": "user", "content": prompt}],
                        "chosen": [{"role": "assistant", "content": f"n{good}"}],
                        "rejected": [{"role": "assistant", "content": f"n{wrong}"}]})
        else:
            out.append({"prompt": prompt, "chosen": f"n{good}", "rejected": f"n{wrong}"})
    return out


def rlvr_records(pairs, forms: bool = True) -> list:
    """Verifiable prompts 'what is nA plus nB' with answer 'n((A+B)%10)' for each (A, B) of
    ``pairs``; ``forms``: every other prompt as a message list (TRL's conversational form)."""
    out = []
    for i, (a, b) in enumerate(pairs):
        q = f"what is n{a} plus n{b}"
        prompt = [{"role": "user", "content": q}] if forms and i % 2 else q
        out.append({"prompt": prompt, "answer": f"n{(a + b) % 10}"})
    return out
