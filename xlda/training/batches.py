"""Micro-batches for the training loop: DP-sharded, resumable, with the annealing swap.

Sampling follows Megatron's ``MegatronPretrainingSampler``: the global sample stream is read in
order from ``consumed_samples``; each step of ``micro_batch_size * dp_size`` samples is split so
DP rank r takes the r-th slice. Every rank (all TP/PP ranks too) reads its own data, so no TP
broadcast is needed. The position wraps around the dataset (a new epoch) rather than failing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch

SAMPLE_KEYS = ("tokens", "labels", "loss_mask", "position_ids", "doc_ids", "lang_ids")


def collate(samples: list[dict]) -> dict:
    """Plain ``torch.stack`` per key (CONTRACTS: Samples)."""
    if not samples:
        raise ValueError("collate: empty micro-batch")
    missing = [k for k in SAMPLE_KEYS if k not in samples[0]]
    if missing:
        raise KeyError(f"dataset samples lack keys {missing}; CONTRACTS.md 'Samples' lists them")
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def dp_sample_indices(consumed_samples: int, micro_batch_size: int, dp_rank: int,
                      dp_size: int, dataset_len: int) -> list[int]:
    """Dataset indices of DP rank ``dp_rank``'s next micro-batch (Megatron's sampler order)."""
    start = consumed_samples + dp_rank * micro_batch_size
    return [(start + i) % dataset_len for i in range(micro_batch_size)]


def batch_stats(batch: dict, mode: str, num_langs: int = 0) -> dict:
    """Per-micro-batch statistics from the CPU batch (in a loader worker): visible mask pairs,
    causal pairs, tokens, the THD K/V rows of each sample, tokens per language. Plain numbers, so
    the training step never reads a device tensor back to count them."""
    from xlda.attention.stats import kv_rows_per_row
    from xlda.training.metrics import allowed_pairs

    doc, lang = batch["doc_ids"], batch["lang_ids"]
    B, S = doc.shape
    stats = {"pairs": allowed_pairs(doc, lang, mode), "causal": B * S * (S + 1) // 2,
             "tokens": B * S, "kv_rows": kv_rows_per_row(doc.numpy(), lang.numpy(), mode).tolist()}
    if num_langs:
        stats["lang_tokens"] = torch.bincount(lang.reshape(-1).long(), minlength=num_langs).tolist()
    return stats


class BatchCollator:
    """collate_fn of the training DataLoader (picklable, runs in the workers): stacks the samples,
    adds ``stats`` (batch_stats) and, for the thd/te executors, the THD layout built on the CPU,
    so the device step needs no host round trip to derive it."""

    def __init__(self, mode: str = "xlda", num_langs: int = 0, thd_layout: bool = False):
        self.mode, self.num_langs, self.thd_layout = mode, num_langs, thd_layout

    def __call__(self, samples: list[dict]) -> dict:
        return self.finish(collate(samples))

    def finish(self, batch: dict) -> dict:
        """Add the stats (and THD layout) to a collated ``[B, S]`` batch."""
        batch["stats"] = batch_stats(batch, self.mode, self.num_langs)
        if self.thd_layout:
            from xlda.attention.thd import build_thd_layout

            batch["thd_layout"] = build_thd_layout(batch["doc_ids"], batch["lang_ids"], self.mode)
        return batch


class MicroBatchSampler:
    """Megatron's MegatronPretrainingSampler as an endless batch sampler: DP rank ``dp_rank``'s
    micro-batches from ``consumed_samples`` on (wrapping around the dataset)."""

    def __init__(self, dataset_len: int, consumed_samples: int, micro_batch_size: int,
                 dp_rank: int, dp_size: int):
        self.n, self.consumed = dataset_len, consumed_samples
        self.mbs, self.dp_rank, self.dp_size = micro_batch_size, dp_rank, dp_size

    def __iter__(self):
        c = self.consumed
        while True:
            yield dp_sample_indices(c, self.mbs, self.dp_rank, self.dp_size, self.n)
            c += self.mbs * self.dp_size


def to_device(batch: dict, device) -> dict:
    """Tensors (and a THD layout) to ``device`` without blocking the host; the rest stays."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor) or hasattr(v, "pin_memory") and hasattr(v, "to"):
            out[k] = v.to(device, non_blocking=True)
        else:
            out[k] = v
    return out


class DataStream:
    """Iterator of collated micro-batches; position = samples consumed by all DP ranks together.

    Batches come from a ``torch.utils.data.DataLoader`` (Megatron-LM's ``--num-workers``) over
    MicroBatchSampler, pinned on CUDA and prefetched by the workers; the position counts batches
    handed out, not prefetched, so a checkpoint resumes exactly. Order is independent of the
    number of workers."""

    def __init__(self, dataset, micro_batch_size: int, dp_rank: int = 0, dp_size: int = 1,
                 consumed_samples: int = 0, device: Optional[torch.device] = None,
                 num_workers: int = 0, collate_fn=None, pin_memory: Optional[bool] = None):
        if dataset is None or len(dataset) == 0:
            raise ValueError("DataStream: the dataset is empty; check the data paths and --split")
        if num_workers < 0:
            raise ValueError(f"--num-workers must be >= 0, got {num_workers}")
        self.dataset = dataset
        self.micro_batch_size = micro_batch_size
        self.dp_rank, self.dp_size = dp_rank, dp_size
        self._consumed = consumed_samples
        self.device = device
        self.num_workers = num_workers
        self.collate_fn = collate_fn or BatchCollator()
        self.pin_memory = (device is not None and device.type == "cuda") if pin_memory is None else pin_memory
        self._it = None

    @property
    def consumed_samples(self) -> int:
        return self._consumed

    @consumed_samples.setter
    def consumed_samples(self, value: int) -> None:
        if value != self._consumed:
            self.close()  # restart the loader at the new position (resume)
        self._consumed = value

    def _loader(self):
        from torch.utils.data import DataLoader

        sampler = MicroBatchSampler(len(self.dataset), self._consumed, self.micro_batch_size,
                                    self.dp_rank, self.dp_size)
        w = self.num_workers
        # Its own generator: a DataLoader draws its workers' base seed from the one it is given,
        # and from torch's global RNG otherwise, which would shift dropout's stream (resume).
        return iter(DataLoader(self.dataset, batch_sampler=sampler, collate_fn=self.collate_fn,
                               num_workers=w, pin_memory=self.pin_memory,
                               prefetch_factor=2 if w else None, persistent_workers=False,
                               generator=torch.Generator().manual_seed(0)))

    def close(self) -> None:
        """Stop the workers (they restart lazily)."""
        it, self._it = self._it, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        if self._it is None:
            self._it = self._loader()
        batch = next(self._it)
        self._consumed += self.micro_batch_size * self.dp_size
        if self.device is not None:
            batch = to_device(batch, self.device)
        return batch


class TrainData:
    """Main stream plus the annealing stream; which one feeds training is checkpointed state."""

    def __init__(self, main, annealing=None, *, micro_batch_size: int, dp_rank: int = 0,
                 dp_size: int = 1, device=None, num_workers: int = 0, collate_fn=None):
        kw = dict(device=device, num_workers=num_workers, collate_fn=collate_fn)
        self.main = DataStream(main, micro_batch_size, dp_rank, dp_size, **kw)
        self.annealing = (DataStream(annealing, micro_batch_size, dp_rank, dp_size, **kw)
                          if annealing is not None else None)
        self.use_annealing = False

    def switch_to_annealing(self) -> bool:
        """Swap to the annealing blend (if one exists). Returns whether data changed."""
        self.use_annealing = True
        if self.annealing is not None:
            self.main.close()
        return self.annealing is not None

    def close(self) -> None:
        for s in (self.main, self.annealing):
            if s is not None:
                s.close()

    @property
    def current(self) -> DataStream:
        return self.annealing if (self.use_annealing and self.annealing is not None) else self.main

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        return next(self.current)

    @property
    def consumed_samples(self) -> int:
        """Samples consumed in total (both phases): Megatron's ``consumed_train_samples``."""
        return self.main.consumed_samples + (self.annealing.consumed_samples if self.annealing else 0)

    def state_dict(self) -> dict:
        return {
            "main_consumed_samples": self.main.consumed_samples,
            "annealing_consumed_samples": self.annealing.consumed_samples if self.annealing else 0,
            "use_annealing": self.use_annealing,
        }

    def load_state_dict(self, state: dict) -> None:
        self.main.consumed_samples = int(state["main_consumed_samples"])
        if self.annealing is not None:
            self.annealing.consumed_samples = int(state["annealing_consumed_samples"])
        self.use_annealing = bool(state["use_annealing"])


@dataclass
class RunDatasets:
    languages: tuple
    train: object
    valid: object
    annealing: object
    vocab_size: int


def build_tokenizer_for(data_config):
    if data_config.tokenizer_type is None:
        return None
    from xlda.data.tokenizer import build_tokenizer

    return build_tokenizer(data_config.tokenizer_type, data_config.tokenizer_model)


def build_run_datasets(run_config, log=print) -> RunDatasets:
    """Train/valid (main spec) and the annealing dataset, sized for the run (Megatron's
    train_val_test_num_samples). Sets ``run_config.model.vocab_size`` from the tokenizer."""
    from xlda.data import build_xlda_datasets
    from xlda.data.packing import summary_line
    from xlda.training.wsd import annealing_dataset_config

    cfg, t = run_config, run_config.training
    tokenizer = build_tokenizer_for(cfg.data)
    dcfg = cfg.data.build(tokenizer, seed=t.seed)
    if tokenizer is not None:
        cfg.model.vocab_size = tokenizer.vocab_size
    elif dcfg.tokenizer.vocab_size > cfg.model.vocab_size:
        # mock data spans MockTokenizer's range; the model must cover it
        cfg.model.vocab_size = dcfg.tokenizer.vocab_size
    gbs = t.global_batch_size
    decay_start, use_anneal = cfg.decay_start, cfg.annealing_on
    n_train = (decay_start if use_anneal else t.train_iters) * gbs
    # Each evaluation reads the same first eval_iters global batches of the validation split
    # (Trainer.evaluate restarts its stream), so that is all the index needs; the test split
    # is never read (0: no index, and an empty test split of a language cannot stop the run).
    n_valid = t.eval_iters * gbs if t.eval_iters else 0
    log(f"[xlda] building datasets: {'mock' if dcfg.mock else 'indexed'} data, languages "
        f"{list(dcfg.languages)}, seq {dcfg.sequence_length}, train samples {n_train}")
    train, valid, _ = build_xlda_datasets(dcfg, num_samples=[max(n_train, gbs), n_valid, 0])
    if train is None:
        raise ValueError(f"no training split: --split {cfg.data.split!r} gives it weight 0")
    for name, d in (("train", train), ("valid", valid)):
        if d is not None and d.index is not None:  # what the run trains on, as built
            log(f"[xlda] index {name}: {summary_line(d.index.stats, len(d))}")
    annealing = None
    if use_anneal:
        acfg = annealing_dataset_config(cfg.data, tokenizer, t.seed, train)
        n_anneal = max(t.train_iters - decay_start, 1) * gbs
        annealing, _, _ = build_xlda_datasets(acfg, num_samples=[n_anneal, 0, 0])
        log(f"[xlda] annealing blend: P(l) = " + ", ".join(
            f"{lang} {p:.3f}" for lang, p in zip(annealing.languages, annealing.probs)))
        log(f"[xlda] index annealing: {summary_line(annealing.index.stats, len(annealing))}")
    return RunDatasets(tuple(train.languages), train, valid, annealing, cfg.model.vocab_size)
