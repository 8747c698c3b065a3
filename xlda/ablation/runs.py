"""The ablation's runs: one training per (arm, seed) and its held-out evaluation.

Fairness: a run's initial weights depend on its seed only, and its data order on its seed and
its packing (the packing index is seeded by ``training.seed``; the mask is not an input to it).
So for one seed every arm starts from identical weights, arms A and B (same affinity p) train on
byte-identical batches and differ in the mask alone, and arms A and C (same mask) differ in the
packing alone. Held-out data are fixed (their own seed, ``EVAL_SEED``), identical for every run.

Held-out metrics, per language:
- ``packed``: held-out documents packed like training (>= 2 languages per sequence), each model
  evaluated with ITS OWN training mask, i.e. in the regime it was trained for (evaluating an
  XLDA model under a causal mask would test a mismatch, not the method). Every model is also
  evaluated under the other two masks (``eval_mask`` column of the CSV).
- ``isolated``: each held-out document alone in its sequence (its first seq_length tokens,
  padding masked out). With one document, xlda == document == causal, so this metric is
  mask-independent: it compares what the weights learned, not what the context allows.
- ``probe_<condition>[@subset]``: the in-context transfer probe (probe.py), own mask.
Run facts add the repeated-sequence test (induction.py) and the affinity measured on the run's
own training index (``index_affinity``).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from xlda.attention.modes import MODES
from xlda.paths import REPO_ROOT

MASKS = MODES  # every mask the model knows


@dataclass(frozen=True)
class Arm:
    """One arm of the ablation: the training mask and whether the packer's affinity is on (at the
    ablation's --affinity-p) or off (today's packing, p = 0)."""

    mask: str
    affinity: bool
    note: str = ""


# The pre-registered arms (issue #20). A and B share the packing index (same seed, same p: the
# same batches), so A - B isolates the mask; A and C share the mask, so A - C isolates affinity.
ARMS = {
    "A": Arm("xlda", True, "XLDA mask, affinity packing"),
    "B": Arm("document", True, "document mask, affinity packing (A's batches)"),
    "C": Arm("xlda", False, "XLDA mask, today's packing (affinity 0)"),
    "D": Arm("causal", True, "causal mask, affinity packing (A's batches); not pre-registered"),
}
DEFAULT_ARMS = ("A", "B", "C")
EVAL_SEED = 98765
RECIPE = REPO_ROOT / "examples" / "trillion7b" / "tiny.yaml"
MIXES = {  # --mix presets: training token shares P(l)
    "7b": {"en": 0.85, "ko": 0.10, "ja": 0.025, "zh": 0.025},  # Trillion-7B's 8.5 : 1 : 0.5
    "uniform": {"en": 0.7, "ko": 0.1, "ja": 0.1, "zh": 0.1},  # ablation v1's mix
}


@dataclass(frozen=True)
class Size:
    """A --size preset: model overrides of the tiny recipe and the run shape it is sized for."""

    model: dict
    seq_length: int
    micro_batch_size: int
    global_batch_size: int
    train_iters: int
    bf16: bool = False
    note: str = ""


SIZES = {
    # The default (ablation v3): small enough for 2,000 iterations (4.1M tokens) per run, 4 seeds
    # x 3 arms in 60 min on 2 CPU cores, and trained long enough to use its context (the
    # induction test in RESULTS.md); `medium` at 256 iterations (v2) never did.
    "tiny": Size({}, 256, 8, 8, 2000, note="2 layers x 128: the recipe's model, 2,000 iterations"),
    "small": Size({"num_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
                   "num_query_groups": 2, "ffn_hidden_size": 768}, 256, 8, 8, 256,
                  note="4 layers x 256, ~3.1M non-embedding parameters"),
    # Ablation v2's default: the largest model for which 5 seeds x 3 masks at 256 iterations fit
    # in 60 min on 2 CPU cores (measured); too few steps for the models to use their context.
    "medium": Size({"num_layers": 6, "hidden_size": 256, "num_attention_heads": 4,
                    "num_query_groups": 2, "ffn_hidden_size": 768}, 256, 8, 8, 256,
                   note="6 layers x 256, ~4.7M non-embedding parameters"),
    # One H100, ~9 min for 15 runs (estimate: gpu_minutes(), 15% bf16 MFU; not measured here).
    "gpu": Size({"num_layers": 8, "hidden_size": 512, "num_attention_heads": 8,
                 "num_query_groups": 4, "ffn_hidden_size": 1408}, 1024, 16, 32, 900, bf16=True,
                note="8 layers x 512, ~24M non-embedding parameters, bf16"),
}
H100_BF16_FLOPS = 989e12  # dense peak
GPU_MFU = 0.15  # what a model this small reaches on one H100, roughly; an assumption


def run_flops(size: str, vocab: int = 2304, train_iters: Optional[int] = None) -> dict:
    """Parameters and training FLOPs of one run of ``size``, from the model's own counts:
    ModelConfig.layer_parameters for the weights and the trainer's FlopsModel (matmuls, 3x
    forward, causal attention pairs) for the FLOPs; the estimate behind --size gpu."""
    from xlda.training.config import RunConfig
    from xlda.training.metrics import FlopsModel

    z = SIZES[size]
    m = dataclasses.replace(RunConfig.from_yaml(RECIPE).model, **z.model, vocab_size=vocab,
                            seq_length=z.seq_length)
    norm = m.hidden_size if m.normalization == "RMSNorm" else 2 * m.hidden_size
    layer = m.layer_parameters() - 2 * norm  # the matmul weights (norm scales: no FLOPs)
    n = m.num_layers * layer + 2 * vocab * m.hidden_size  # untied input and output embeddings
    S = z.seq_length
    tokens = (train_iters or z.train_iters) * z.global_batch_size * S
    flops = FlopsModel.from_model_config(m, vocab).train_flops(tokens, tokens // S * S * (S + 1) // 2)
    return {"params": n, "non_embedding": m.num_layers * layer, "tokens": tokens, "flops": flops}


def gpu_minutes(runs: int = 15, size: str = "gpu", mfu: float = GPU_MFU) -> float:
    """Estimated training minutes of ``runs`` runs of ``size`` on one H100 at ``mfu``."""
    return runs * run_flops(size)["flops"] / (H100_BF16_FLOPS * mfu) / 60


@dataclass
class AblationConfig:
    """What to train: the tiny recipe resized by ``size``, on prepared data, per mask and seed.
    ``None`` for iterations, batch sizes and sequence length means the size preset's value."""

    data: dict  # prepare_data's output: tokenizer, train/heldout prefixes, held-out keys
    arms: tuple = DEFAULT_ARMS
    seeds: tuple = (1, 2, 3, 4, 5)
    affinity_p: float = 1.0  # the packer's --xlda-affinity-p in the arms with affinity
    train_iters: Optional[int] = None
    size: str = "tiny"
    mix: dict = field(default_factory=lambda: dict(MIXES["7b"]))
    eval_samples: int = 48  # packed held-out sequences
    isolated_docs: int = 48  # per language, at most
    probe_source: str = "en"
    probe_context: Optional[int] = None  # tokens of context (default: half the sequence)
    micro_batch_size: Optional[int] = None
    global_batch_size: Optional[int] = None
    seq_length: Optional[int] = None
    workdir: Optional[str] = None  # run dirs (metrics.jsonl) go under it: the results directory

    def __post_init__(self):
        if self.size not in SIZES:
            raise ValueError(f"--size {self.size!r}: choose one of {sorted(SIZES)}")
        preset = SIZES[self.size]
        self.train_iters = self.train_iters or preset.train_iters
        self.micro_batch_size = self.micro_batch_size or preset.micro_batch_size
        self.global_batch_size = self.global_batch_size or preset.global_batch_size
        self.seq_length = self.seq_length or preset.seq_length

    def build(self) -> list["RunSpec"]:
        """The run plan: seed-major, so partial results cover every arm for early seeds."""
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"unknown arm(s) {bad}; choose from {list(ARMS)}")
        if not 0.0 < self.affinity_p <= 1.0:
            raise ValueError(f"--affinity-p {self.affinity_p}: must be in (0, 1] (arm C is "
                             f"today's packing, p = 0)")
        if any(ARMS[a].affinity for a in self.arms) and not self.data.get("group_field"):
            raise ValueError("the affinity arms need documents' groups: an aligned corpus "
                             "(--group-key) prepared with them")
        return [RunSpec(arm, seed, self) for seed in self.seeds for arm in self.arms]


@dataclass
class RunSpec:
    arm: str
    seed: int
    ablation: AblationConfig

    @property
    def mask(self) -> str:
        return ARMS[self.arm].mask

    @property
    def affinity_p(self) -> float:
        return self.ablation.affinity_p if ARMS[self.arm].affinity else 0.0

    @property
    def name(self) -> str:
        return f"{self.arm}_{self.mask}_p{self.affinity_p:g}_seed{self.seed}"

    def run_config(self):
        """The RunConfig of this run: recipe + size + data + mask + seed (nothing else varies)."""
        from xlda.training.config import RunConfig

        a = self.ablation
        size = SIZES[a.size]
        cfg = RunConfig.from_yaml(RECIPE)
        cfg.model = dataclasses.replace(cfg.model, attention_mask_type=self.mask, **size.model,
                                        seq_length=a.seq_length, bf16=size.bf16)
        d = cfg.data
        d.seq_length = a.seq_length
        d.paths = {l: [p] for l, p in a.data["train"].items()}
        d.tokenizer_type, d.tokenizer_model = "HuggingFaceTokenizer", a.data["tokenizer"]
        d.split = "100,0,0"  # held-out documents live in their own datasets
        d.xlda_alpha, d.xlda_beta = 0.0, dict(a.mix)  # P(l) = the mix exactly
        d.xlda_affinity_p = self.affinity_p
        d.xlda_affinity_key = a.data.get("group_field") if self.affinity_p > 0 else None
        t = cfg.training
        t.seed, t.train_iters = self.seed, a.train_iters
        t.eval_interval, t.eval_iters = None, 0
        t.micro_batch_size, t.global_batch_size = a.micro_batch_size, a.global_batch_size
        cfg.scheduler.lr_warmup_iters = max(a.train_iters // 20, 1)
        cfg.scheduler.lr_wsd_decay_iters = max(a.train_iters // 10, 1)
        cfg.logging.log_interval = max(a.train_iters // 4, 1)
        cfg.checkpoint.save = None
        cfg.checkpoint.exit_on_signal = False
        if a.workdir:
            t.run_dir = str(Path(a.workdir) / "runs" / self.name)
        return cfg


def heldout_dataset(data: dict, seq_length: int, num_samples: int):
    """Held-out documents packed like training (uniform language mix), fixed seed."""
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


def isolated_batches(docs: dict, seq_length: int, max_docs: int, eod: int, batch: int = 8):
    """Per language, batches of single held-out documents (first seq_length tokens) of the
    first ``max_docs`` of ``docs`` (heldout_docs' output)."""
    import torch  # here, not at the top: the ablation's --help and flag errors need no torch

    out = {}
    for li, (lang, all_docs) in enumerate(docs.items()):
        docs_l = all_docs[:max_docs]
        bs = []
        for b in range(0, len(docs_l), batch):
            chunk = docs_l[b:b + batch]
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


def loss_sums(model, batches, mode: str, num_langs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-language (sum of token losses, token count) of ``model`` over ``batches``."""
    from xlda.ablation.forward import per_token_losses

    sums, cnts = np.zeros(num_langs), np.zeros(num_langs)
    for b, loss in per_token_losses(model, batches, mode):
        m = b["loss_mask"].double()
        li = b["lang_ids"].long().view(-1).cpu().numpy()
        sums += np.bincount(li, (loss * m).view(-1).cpu().numpy(), minlength=num_langs)
        cnts += np.bincount(li, m.view(-1).cpu().numpy(), minlength=num_langs)
    return sums, cnts


def packed_batches(ds, micro_batch_size: int) -> list[dict]:
    from xlda.training.batches import collate

    return [collate([ds[i] for i in range(b, min(b + micro_batch_size, len(ds)))])
            for b in range(0, len(ds), micro_batch_size)]


def init_checksum(model) -> float:
    """Sum of |w| over all parameters: equal across masks for one seed (same init)."""
    return float(sum(p.detach().double().abs().sum() for p in model.parameters()))


def train_and_eval(spec: RunSpec, heldout: dict, log=print) -> dict:
    """Train one run, evaluate it on the held-out sets; rows for the CSV plus run facts.

    The run owns the process's distributed state (the ablation is one process) and tears it down
    when it ends: every setup makes megatron-core's process groups anew, and dropping them does
    not stop their gloo threads (measured: 48 more threads per run, 423 after 7 runs)."""
    try:
        return _train_and_eval(spec, heldout, log)
    finally:
        import gc

        from xlda.training.dist_env import shutdown

        shutdown()
        gc.collect()  # the trainer's reference cycles hold the groups (and their threads) too


def _train_and_eval(spec: RunSpec, heldout: dict, log) -> dict:
    from xlda.ablation.induction import induction_losses
    from xlda.ablation.probe import probe_losses
    from xlda.training.loop import Trainer

    cfg = spec.run_config()
    t0 = time.perf_counter()
    trainer = Trainer(cfg, print_fn=lambda *a, **k: None).setup()
    model = trainer.model_chunks[0]
    checksum = init_checksum(model)
    train_ds = trainer.data.main.dataset
    first = train_ds[0]["tokens"]  # sample 0 of this run's data order
    batches_sum = int(sum(int(train_ds[i]["tokens"].sum()) for i in
                          range(min(len(train_ds), 64))))  # its first 64 samples
    affinity = index_affinity(train_ds, spec.ablation.data.get("group_field"),
                              cfg.data.seq_length)
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
    per_item = {}
    for key, (s, c) in probe_losses(model, heldout["probe"], spec.mask).items():
        lang, cond, sub = (key + ("",))[:3]
        if c.sum():
            metric = f"probe_{cond}" + (f"@{sub}" if sub else "")
            rows.append({"metric": metric, "eval_mask": spec.mask, "lang": lang,
                         "loss": float(s.sum() / c.sum()), "tokens": int(c.sum())})
            if not sub:  # per document: the run file keeps them
                per_item[f"{lang}/{cond}"] = (s / np.maximum(c, 1)).tolist()
    for r in rows:
        r.update(arm=spec.arm, mask=spec.mask, affinity_p=spec.affinity_p, seed=spec.seed)
    induction = {k: induction_losses(model, b, spec.mask) for k, b in heldout["induction"].items()}
    hist = result.history
    own = {(r["metric"], r["lang"]): r["loss"] for r in rows if r["eval_mask"] == spec.mask}
    trained = dict(trainer.lang_tokens_total)  # the run's own count (metrics.jsonl share_*)
    total = max(sum(trained.values()), 1)
    facts = {"name": spec.name, "arm": spec.arm, "mask": spec.mask,
             "affinity_p": spec.affinity_p, "seed": spec.seed, "train_s": train_s,
             "induction": induction, "affinity": affinity, "samples_64_sum": batches_sum,
             "params": sum(p.numel() for p in model.parameters()),
             "eval_s": time.perf_counter() - t0 - train_s,
             "iterations": result.iteration, "init_checksum": checksum,
             "tokens_per_s": result.iteration * cfg.training.global_batch_size
             * cfg.data.seq_length / train_s,
             "first_sample_sum": int(first.sum()),
             "trained_shares": {k: v / total for k, v in trained.items()},
             "index_shares": dict(zip(trainer.languages, train_ds.index.stats.get("shares", []))),
             "first_loss": hist[0]["lm loss"] if hist else None,
             "last_loss": hist[-1]["lm loss"] if hist else None}
    log(f"[ablation] {spec.name}: {result.iteration} iters in {train_s:.0f}s, train loss "
        f"{facts['first_loss']:.3f} -> {facts['last_loss']:.3f}; held-out (own mask) " + ", ".join(
            f"{r['lang']} {r['loss']:.3f}" for r in rows
            if r["metric"] == "packed" and r["eval_mask"] == spec.mask) + "; probe transfer " + ", ".join(
            f"{l} {own[('probe_unrelated', l)] - own[('probe_translation', l)]:+.4f}" for l in langs
            if ("probe_translation", l) in own) + "; induction gain " + ", ".join(
            f"{k} {v['gain']:+.3f}" for k, v in induction.items()))
    return {"rows": rows, "facts": facts, "probe_items": per_item}


def index_affinity(ds, field: Optional[str], seq_length: int) -> Optional[dict]:
    """The affinity measured on a run's training index (packing.affinity_stats), whatever its
    p: today's packing (arm C) has chance pairs too. None without groups."""
    if not field:
        return None
    from xlda.data.packing import affinity_stats, affinity_tables

    corpus = ds.dataset
    lengths = [np.ascontiguousarray(corpus.lengths(l)[r.start:r.stop], dtype=np.int32)
               for l, r in enumerate(ds.doc_ids)]
    groups = [np.asarray(corpus.groups(l, field)[r.start:r.stop]) for l, r in enumerate(ds.doc_ids)]
    dense = affinity_tables(groups, lengths, 0.0, 0)[2]
    id_first = np.array([r.start for r in ds.doc_ids], dtype=np.int64)
    return affinity_stats(ds.index.arrays(), lengths, id_first, dense, seq_length,
                          len(ds) * seq_length)


def heldout_docs(data: dict) -> dict:
    """Held-out documents as token arrays, per language (in the order of ``heldout_groups``)."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    out = {}
    for lang, prefix in data["heldout"].items():
        ds = IndexedDataset(prefix, multimodal=False)
        out[lang] = [np.asarray(ds[i], dtype=np.int64) for i in range(len(ds))]
    return out


def train_tokens(data: dict) -> int:
    """Tokens of the training split, all languages (from the indexed data's lengths)."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    total = 0
    for prefix in data["train"].values():
        ds = IndexedDataset(prefix, multimodal=False)  # alive while its memmap is read
        total += int(ds.sequence_lengths.sum())
        del ds
    return total


def prepare_heldout(a: AblationConfig) -> dict:
    """Packed, isolated and probe held-out batches, built once and shared by every run."""
    from xlda.ablation.induction import induction_batches, random_sequences, text_sequences
    from xlda.ablation.probe import build_probe, native_tokens, probe_batches
    from xlda.data.tokenizer import build_tokenizer

    S = a.seq_length
    ds = heldout_dataset(a.data, S, a.eval_samples)
    tok = build_tokenizer("HuggingFaceTokenizer", a.data["tokenizer"])
    eod = tok.eod
    docs = heldout_docs(a.data)  # read once: the isolated metric and the probe share them
    iso = isolated_batches(docs, S, a.isolated_docs, eod)
    assert tuple(ds.languages) == tuple(a.data["heldout"]), (ds.languages, list(a.data["heldout"]))
    probe = {}
    if a.data.get("aligned"):
        native = {l: native_tokens(tok, l) for l in docs}
        probe = build_probe(docs, a.data["heldout_groups"], S, eod, source=a.probe_source,
                            context_len=a.probe_context, native=native)
    return {"languages": tuple(ds.languages), "packed": packed_batches(ds, 8), "isolated": iso,
            "induction": {
                "random": induction_batches(random_sequences(docs["en"], eod, min(64, S // 2)),
                                            eod, S),
                "text": induction_batches(text_sequences(docs["en"], eod, min(64, S // 2)),
                                          eod, S)},
            "train_tokens": train_tokens(a.data),
            "seq_length": S, "probe_items": {l: len(v) for l, v in probe.items()},
            "probe": probe_batches(probe, S, eod)}
