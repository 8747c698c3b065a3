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


def mask_params(batch: dict, mode: str):
    from xlda.attention.params import MaskParams

    return MaskParams(batch["doc_ids"], batch["lang_ids"], mode)


class DataStream:
    """Iterator of collated micro-batches; position = samples consumed by all DP ranks together."""

    def __init__(self, dataset, micro_batch_size: int, dp_rank: int = 0, dp_size: int = 1,
                 consumed_samples: int = 0, device: Optional[torch.device] = None):
        if dataset is None or len(dataset) == 0:
            raise ValueError("DataStream: the dataset is empty; check the data paths and --split")
        self.dataset = dataset
        self.micro_batch_size = micro_batch_size
        self.dp_rank, self.dp_size = dp_rank, dp_size
        self.consumed_samples = consumed_samples
        self.device = device

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        idx = dp_sample_indices(self.consumed_samples, self.micro_batch_size, self.dp_rank,
                                self.dp_size, len(self.dataset))
        self.consumed_samples += self.micro_batch_size * self.dp_size
        batch = collate([self.dataset[i] for i in idx])
        if self.device is not None:
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        return batch


class TrainData:
    """Main stream plus the annealing stream; which one feeds training is checkpointed state."""

    def __init__(self, main, annealing=None, *, micro_batch_size: int, dp_rank: int = 0,
                 dp_size: int = 1, device=None):
        self.main = DataStream(main, micro_batch_size, dp_rank, dp_size, device=device)
        self.annealing = (DataStream(annealing, micro_batch_size, dp_rank, dp_size, device=device)
                          if annealing is not None else None)
        self.use_annealing = False

    def switch_to_annealing(self) -> bool:
        """Swap to the annealing blend (if one exists). Returns whether data changed."""
        self.use_annealing = True
        return self.annealing is not None

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
    decay_start = (cfg.scheduler.lr_decay_iters or t.train_iters) - cfg.wsd_decay_iters()
    use_anneal = cfg.data.annealing and cfg.scheduler.lr_decay_style == "WSD"
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
    annealing = None
    if use_anneal:
        acfg = annealing_dataset_config(cfg.data, tokenizer, t.seed, train)
        n_anneal = max(t.train_iters - decay_start, 1) * gbs
        annealing, _, _ = build_xlda_datasets(acfg, num_samples=[n_anneal, 0, 0])
        log(f"[xlda] annealing blend: P(l) = " + ", ".join(
            f"{lang} {p:.3f}" for lang, p in zip(annealing.languages, annealing.probs)))
    return RunDatasets(tuple(train.languages), train, valid, annealing, cfg.model.vocab_size)
