"""A tiny Megatron checkpoint, its tokenizer and HF export, and small lm-eval tasks built for
the tests (local JSONL, no download): multiple choice in two languages on the same items (a
parallel pair), a group of both, generation with exact match, and a rolling log-likelihood."""
from __future__ import annotations

import json
import random
from pathlib import Path

from tests.data.fixtures import word_level_tokenizer

N_WORDS = 300  # w0..w299: the tasks' text; the model's vocabulary is larger (mock data)


def train_tiny_checkpoint(root: Path, iters: int = 6, seq_length: int = 64) -> tuple:
    """-> (the --save dir of a 2-layer model trained a few steps on mock data, its tokenizer)."""
    from xlda.model.recipes import tiny
    from xlda.training import dist_env
    from xlda.training.config import RunConfig
    from xlda.training.loop import Trainer

    cfg = RunConfig(model=tiny(seq_length=seq_length, num_layers=2))
    cfg.data.mock, cfg.data.seq_length, cfg.data.xlda_alpha = True, seq_length, 1.0
    cfg.data.split = "90,10,0"
    t = cfg.training
    t.train_iters, t.micro_batch_size, t.global_batch_size, t.seed = iters, 2, 4, 1234
    cfg.optimizer.lr, cfg.optimizer.min_lr = 3e-3, 3e-4
    cfg.scheduler.lr_warmup_iters, cfg.scheduler.lr_wsd_decay_iters = 1, 2
    cfg.checkpoint.save = str(root / "ckpt")
    Trainer(cfg, print_fn=lambda *a, **k: None).setup().train()
    dist_env.shutdown()
    vocab = cfg.model.vocab_size
    # EOD, [UNK], then words: as many ids as the model has (mock data sized its vocabulary)
    tok = word_level_tokenizer(root, [f"w{i}" for i in range(vocab - 2)], name="tokenizer.json")
    return root / "ckpt", tok


def export_hf(ckpt: Path, tok: Path, out: Path) -> Path:
    from xlda.checkpoint_conversion.convert import ConvertConfig

    return ConvertConfig(source="mcore", target="hf", load_dir=str(ckpt), save_dir=str(out),
                         tokenizer_model=str(tok)).run()


def _words(rng, n):
    return " ".join(f"w{rng.randrange(1, N_WORDS)}" for _ in range(n))


def mc_items(n: int = 8, seed: int = 0) -> list:
    rng = random.Random(seed)
    return [{"question": _words(rng, rng.randint(3, 8)),
             "choices": [_words(rng, rng.randint(1, 3)) for _ in range(3)],
             "answer": rng.randrange(3)} for _ in range(n)]


def translate(item: dict, shift: int = 7) -> dict:
    """The 'ko' version of an item: every word moved by ``shift`` ids (a parallel set)."""
    def tr(text):
        return " ".join(f"w{(int(w[1:]) + shift) % N_WORDS or 1}" for w in text.split())

    return {"question": tr(item["question"]), "choices": [tr(c) for c in item["choices"]],
            "answer": item["answer"]}


def gen_items(n: int = 4, seed: int = 1) -> list:
    rng = random.Random(seed)
    return [{"question": _words(rng, 4), "answer": _words(rng, 1)} for _ in range(n)]


def _jsonl(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


MC = """task: {name}
dataset_path: {dataset}
{data_files}test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
"""

GEN = """task: toy_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["w0"]
  max_gen_toks: 3
  do_sample: false
metric_list:
  - metric: exact_match
"""

ROLLING = """task: toy_rolling
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
"""

GROUP = """group: toy_group
task: [toy_mc_en, toy_mc_ko]
aggregate_metric_list:
  - metric: acc
    weight_by_size: true
"""


def write_tasks(root: Path) -> dict:
    """Task YAMLs under root/tasks, data under root/data (toy_mc_ko reads a Hub-style id,
    xlda-test/toy_mc_ko, found only through --data-dir root/data). -> paths."""
    tasks, data = root / "tasks", root / "data"
    items = mc_items()
    _jsonl(data / "mc_en.jsonl", items)
    _jsonl(data / "xlda-test" / "toy_mc_ko" / "test.jsonl", [translate(i) for i in items])
    _jsonl(data / "gen.jsonl", gen_items())
    rng = random.Random(2)
    # texts longer than the model (64 tokens): the rolling windows are cut
    _jsonl(data / "rolling.jsonl", [{"text": _words(rng, n)} for n in (5, 70, 150)])
    tasks.mkdir(parents=True, exist_ok=True)
    files = f"dataset_kwargs:\n  data_files:\n    test: {data / 'mc_en.jsonl'}\n"
    (tasks / "toy_mc_en.yaml").write_text(MC.format(name="toy_mc_en", dataset="json",
                                                    data_files=files))
    (tasks / "toy_mc_ko.yaml").write_text(MC.format(name="toy_mc_ko", dataset="xlda-test/toy_mc_ko",
                                                    data_files=""))
    (tasks / "toy_gen.yaml").write_text(GEN.format(data=data / "gen.jsonl"))
    (tasks / "toy_rolling.yaml").write_text(ROLLING.format(data=data / "rolling.jsonl"))
    (tasks / "_toy_group.yaml").write_text(GROUP)
    (root / "suite.yaml").write_text("""suite: toy
tasks:
  - {task: toy_mc_en, language: en, metric: acc}
  - {task: toy_mc_ko, language: ko, metric: acc}
  - {task: toy_gen, language: en, metric: exact_match}
consistency:
  - [toy_mc_en, toy_mc_ko]
""")
    return {"tasks": tasks, "data": data, "items": items, "suite": root / "suite.yaml"}
