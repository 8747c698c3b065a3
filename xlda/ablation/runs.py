"""The ablation's runs: one tiny-recipe training per (mask, seed) and its held-out evaluation.

Fairness: a run's data order and initial weights depend on its seed only (the packing index and
the init are seeded by ``training.seed``; the mask is not an input to either), so for one seed the
three masks see byte-identical batches and start from identical weights; the mask is the only
difference. Held-out data are fixed (their own seed, ``EVAL_SEED``), identical for every run.

Two held-out metrics, per language:
- ``packed``: held-out documents packed like training (>= 2 languages per sequence), each model
  evaluated with ITS OWN training mask, i.e. in the regime it was trained for (the usual choice;
  evaluating an XLDA model under a causal mask would test a mismatch, not the method). Every
  model is also evaluated under the other two masks (``eval_mask`` column of the CSV).
- ``isolated``: each held-out document alone in its sequence (its first seq_length tokens,
  padding masked out). With one document, xlda == document == causal, so this metric is
  mask-independent: it compares what the weights learned, not what the context allows.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from xlda.paths import REPO_ROOT

MASKS = ("xlda", "document", "causal")
EVAL_SEED = 98765
RECIPE = REPO_ROOT / "examples" / "trillion7b" / "tiny.yaml"
SIZES = {  # --size: model overrides of the tiny recipe
    "tiny": {},
    "small": {"num_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
              "num_query_groups": 2, "ffn_hidden_size": 768},
}


@dataclass
class AblationConfig:
    """What to train: the tiny recipe on prepared data, per mask and seed."""

    data: dict  # prepare_data's output: tokenizer, train/heldout prefixes per language
    masks: tuple = MASKS
    seeds: tuple = (1, 2, 3)
    train_iters: int = 300
    size: str = "tiny"
    mix: dict = field(default_factory=lambda: {"en": 0.7, "ko": 0.1, "ja": 0.1, "zh": 0.1})
    eval_samples: int = 48  # packed held-out sequences
    isolated_docs: int = 64  # per language, at most
    micro_batch_size: Optional[int] = None
    global_batch_size: Optional[int] = None
    seq_length: Optional[int] = None
    workdir: Optional[str] = None  # run dirs (metrics.jsonl) go under it

    def build(self) -> list["RunSpec"]:
        """The run plan: seed-major, so partial results cover every mask for early seeds."""
        if self.size not in SIZES:
            raise ValueError(f"--size {self.size!r}: choose one of {sorted(SIZES)}")
        bad = [m for m in self.masks if m not in MASKS]
        if bad:
            raise ValueError(f"unknown mask(s) {bad}; choose from {list(MASKS)}")
        return [RunSpec(mask, seed, self) for seed in self.seeds for mask in self.masks]


@dataclass
class RunSpec:
    mask: str
    seed: int
    ablation: AblationConfig

    @property
    def name(self) -> str:
        return f"{self.mask}_seed{self.seed}"

    def run_config(self):
        """The RunConfig of this run: tiny recipe + data + mask + seed (nothing else varies)."""
        from xlda.training.config import RunConfig

        a = self.ablation
        cfg = RunConfig.from_yaml(RECIPE)
        cfg.model = dataclasses.replace(cfg.model, attention_mask_type=self.mask, **SIZES[a.size])
        if a.seq_length:
            cfg.model.seq_length = a.seq_length
            cfg.data.seq_length = a.seq_length
        d = cfg.data
        d.paths = {l: [p] for l, p in a.data["train"].items()}
        d.tokenizer_type, d.tokenizer_model = "HuggingFaceTokenizer", a.data["tokenizer"]
        d.split = "100,0,0"  # held-out pages live in their own datasets
        d.xlda_alpha, d.xlda_beta = 0.0, dict(a.mix)  # P(l) = the mix exactly
        t = cfg.training
        t.seed, t.train_iters = self.seed, a.train_iters
        t.eval_interval, t.eval_iters = None, 0
        if a.micro_batch_size:
            t.micro_batch_size = a.micro_batch_size
        if a.global_batch_size:
            t.global_batch_size = a.global_batch_size
        cfg.scheduler.lr_warmup_iters = min(cfg.scheduler.lr_warmup_iters, max(a.train_iters // 4, 1))
        cfg.scheduler.lr_wsd_decay_iters = max(a.train_iters // 10, 1)
        cfg.logging.log_interval = max(a.train_iters // 4, 1)
        cfg.checkpoint.save = None
        cfg.checkpoint.exit_on_signal = False
        if a.workdir:
            t.run_dir = str(Path(a.workdir) / "runs" / self.name)
        return cfg


def heldout_dataset(data: dict, seq_length: int, num_samples: int):
    """Held-out pages packed like training (uniform language mix), fixed seed."""
    from xlda.data import build_xlda_datasets
    from xlda.data.tokenizer import build_tokenizer
    from xlda.training.config import DataConfig

    langs = list(data["heldout"])
    dc = DataConfig(paths={l: [p] for l, p in data["heldout"].items()}, split="100,0,0",
                    seq_length=seq_length, xlda_alpha=0.0,
                    xlda_beta={l: 1.0 for l in langs}, xlda_rho=0.5)
    tok = build_tokenizer("HuggingFaceTokenizer", data["tokenizer"])
    ds, _, _ = build_xlda_datasets(dc.build(tok, seed=EVAL_SEED), num_samples=[num_samples, None, None])
    return ds


def isolated_batches(data: dict, seq_length: int, max_docs: int, eod: int, batch: int = 8):
    """Per language, batches of single held-out documents (first seq_length tokens)."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    out = {}
    for li, (lang, prefix) in enumerate(data["heldout"].items()):
        ds = IndexedDataset(prefix, multimodal=False)
        docs = [np.asarray(ds[i], dtype=np.int64) for i in range(min(len(ds), max_docs))]
        bs = []
        for b in range(0, len(docs), batch):
            chunk = docs[b:b + batch]
            n = len(chunk)
            tokens = torch.full((n, seq_length), eod, dtype=torch.int64)
            labels = torch.full((n, seq_length), eod, dtype=torch.int64)
            loss_mask = torch.zeros(n, seq_length)
            for r, doc in enumerate(chunk):
                k = min(len(doc) - 1, seq_length)
                tokens[r, :k] = torch.from_numpy(doc[:k])
                labels[r, :k] = torch.from_numpy(doc[1:k + 1])
                loss_mask[r, :k] = 1.0
            bs.append({"tokens": tokens, "labels": labels, "loss_mask": loss_mask,
                       "position_ids": torch.arange(seq_length).expand(n, -1).contiguous(),
                       "doc_ids": torch.zeros(n, seq_length, dtype=torch.int32),
                       "lang_ids": torch.full((n, seq_length), li, dtype=torch.int32)})
        out[lang] = bs
    return out


@torch.no_grad()
def loss_sums(model, batches, mode: str, num_langs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-language (sum of token losses, token count) of ``model`` over ``batches``."""
    from xlda.attention.params import MaskParams

    sums, cnts = np.zeros(num_langs), np.zeros(num_langs)
    model.eval()
    for b in batches:
        out = model(b["tokens"], b["position_ids"], MaskParams(b["doc_ids"], b["lang_ids"], mode),
                    labels=b["labels"], loss_mask=b["loss_mask"])
        m = b["loss_mask"].double()
        li = b["lang_ids"].long().view(-1).numpy()
        sums += np.bincount(li, (out.double() * m).view(-1).numpy(), minlength=num_langs)
        cnts += np.bincount(li, m.view(-1).numpy(), minlength=num_langs)
    model.train()
    return sums, cnts


def packed_batches(ds, micro_batch_size: int) -> list[dict]:
    from xlda.training.batches import collate

    return [collate([ds[i] for i in range(b, min(b + micro_batch_size, len(ds)))])
            for b in range(0, len(ds), micro_batch_size)]


def init_checksum(model) -> float:
    """Sum of |w| over all parameters: equal across masks for one seed (same init)."""
    return float(sum(p.detach().double().abs().sum() for p in model.parameters()))


def train_and_eval(spec: RunSpec, heldout: dict, log=print) -> dict:
    """Train one run, evaluate it on the held-out sets; rows for the CSV plus run facts."""
    from xlda.training.loop import Trainer

    cfg = spec.run_config()
    t0 = time.perf_counter()
    trainer = Trainer(cfg, print_fn=lambda *a, **k: None).setup()
    model = trainer.model_chunks[0]
    checksum = init_checksum(model)
    first = trainer.data.main.dataset[0]["tokens"]  # sample 0 of this run's data order
    result = trainer.train()
    train_s = time.perf_counter() - t0
    rows = []
    langs = list(heldout["languages"])
    for eval_mask in MASKS:
        s, c = loss_sums(model, heldout["packed"], eval_mask, len(langs))
        for i, lang in enumerate(langs):
            if c[i]:
                rows.append({"metric": "packed", "eval_mask": eval_mask, "lang": lang,
                             "loss": s[i] / c[i], "tokens": int(c[i])})
    for i, lang in enumerate(langs):
        s, c = loss_sums(model, heldout["isolated"][lang], spec.mask, len(langs))
        rows.append({"metric": "isolated", "eval_mask": spec.mask, "lang": lang,
                     "loss": s[i] / c[i], "tokens": int(c[i])})
    for r in rows:
        r.update(mask=spec.mask, seed=spec.seed)
    hist = result.history
    facts = {"name": spec.name, "mask": spec.mask, "seed": spec.seed, "train_s": train_s,
             "iterations": result.iteration, "init_checksum": checksum,
             "first_sample_sum": int(first.sum()),
             "first_loss": hist[0]["lm loss"] if hist else None,
             "last_loss": hist[-1]["lm loss"] if hist else None}
    log(f"[ablation] {spec.name}: {result.iteration} iters in {train_s:.0f}s, train loss "
        f"{facts['first_loss']:.3f} -> {facts['last_loss']:.3f}; held-out (own mask) " + ", ".join(
            f"{r['lang']} {r['loss']:.3f}" for r in rows
            if r["metric"] == "packed" and r["eval_mask"] == spec.mask))
    return {"rows": rows, "facts": facts}


def prepare_heldout(a: AblationConfig) -> dict:
    """Packed and isolated held-out batches, built once and shared by every run."""
    from xlda.data.tokenizer import build_tokenizer

    from xlda.training.config import RunConfig

    S = a.seq_length or RunConfig.from_yaml(RECIPE).data.seq_length
    ds = heldout_dataset(a.data, S, a.eval_samples)
    eod = build_tokenizer("HuggingFaceTokenizer", a.data["tokenizer"]).eod
    iso = isolated_batches(a.data, S, a.isolated_docs, eod)
    assert tuple(ds.languages) == tuple(a.data["heldout"]), (ds.languages, list(a.data["heldout"]))
    return {"languages": tuple(ds.languages), "packed": packed_batches(ds, 8), "isolated": iso,
            "seq_length": S}
