"""Throughput, MFU and loss logging.

FLOPs count matmuls only (2 per multiply-add), training = 3x forward (forward + 2x backward).
Attention score/value FLOPs are counted per *allowed* query-key pair of the actual mask, so an
XLDA or document mask is credited with the work it really needs, not a causal triangle.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Optional

import torch

H100_BF16_DENSE_TFLOPS = 989.0
# Dense bf16 peak per device by name (NVIDIA data sheets). MFU needs a known peak: on a CPU or
# an unlisted device it is left out (a nominal CPU figure gave "MFU 108%"); --peak-tflops sets it.
PEAK_BF16_DENSE_TFLOPS = (("GH200", 989.0), ("H200", 989.0), ("H100", 989.0), ("H800", 989.0),
                          ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0))


@dataclass
class FlopsModel:
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    ffn_hidden_size: int
    vocab_size: int
    num_query_groups: Optional[int] = None
    kv_channels: Optional[int] = None
    gated_linear_unit: bool = True  # SwiGLU: three FFN matrices
    mtp_num_layers: int = 0

    @classmethod
    def from_model_config(cls, mc, vocab_size: int) -> "FlopsModel":
        g = lambda n, d=None: getattr(mc, n, d)  # noqa: E731
        act = str(g("activation", g("activation_func", "swiglu")) or "swiglu").lower()
        return cls(
            num_layers=mc.num_layers, hidden_size=mc.hidden_size,
            num_attention_heads=mc.num_attention_heads,
            ffn_hidden_size=g("ffn_hidden_size") or 4 * mc.hidden_size,
            vocab_size=vocab_size, num_query_groups=g("num_query_groups"),
            kv_channels=g("kv_channels"),
            gated_linear_unit=bool(g("swiglu", g("gated_linear_unit", "glu" in act))),
            mtp_num_layers=g("mtp_num_layers") or 0,
        )

    @property
    def head_dim(self) -> int:
        return self.kv_channels or self.hidden_size // self.num_attention_heads

    def layer_dense_flops_per_token(self) -> int:
        """Forward matmul FLOPs of one transformer layer for one token, attention scores excluded."""
        h, d = self.hidden_size, self.head_dim
        q = self.num_attention_heads * d
        kv = 2 * (self.num_query_groups or self.num_attention_heads) * d
        qkv = 2 * h * (q + kv)
        proj = 2 * q * h
        mlp = 2 * h * self.ffn_hidden_size * (3 if self.gated_linear_unit else 2)
        return qkv + proj + mlp

    def attention_flops_per_pair(self) -> int:
        """QK^T and AV of one allowed (query, key) pair, summed over heads."""
        return 2 * 2 * self.num_attention_heads * self.head_dim

    def forward_flops(self, num_tokens: int, allowed_pairs: int) -> int:
        """Forward FLOPs of a micro-batch of ``num_tokens`` whose mask allows ``allowed_pairs``."""
        h, v = self.hidden_size, self.vocab_size
        layers = self.num_layers + self.mtp_num_layers
        dense = layers * self.layer_dense_flops_per_token() * num_tokens
        attn = layers * self.attention_flops_per_pair() * allowed_pairs
        logits = (1 + self.mtp_num_layers) * 2 * h * v * num_tokens
        mtp_proj = self.mtp_num_layers * 2 * (2 * h) * h * num_tokens  # eh_proj: [2h -> h]
        return dense + attn + logits + mtp_proj

    def train_flops(self, num_tokens: int, allowed_pairs: int) -> int:
        return 3 * self.forward_flops(num_tokens, allowed_pairs)


def _same_key_prefix_counts(keys: torch.Tensor) -> torch.Tensor:
    """For [S] ``keys``: out[q] = #{k <= q : keys[k] == keys[q]}."""
    _, inv = torch.unique(keys, return_inverse=True)
    onehot = torch.nn.functional.one_hot(inv, int(inv.max()) + 1)
    return onehot.cumsum(0).gather(1, inv[:, None]).squeeze(1)


def allowed_pairs(doc_ids: torch.Tensor, lang_ids: torch.Tensor, mode: str) -> int:
    """Number of True entries of the mask (CONTRACTS: xlda.attention.mask.dense_mask) without
    building it: O(B * S * distinct ids) instead of O(B * S^2)."""
    if doc_ids.dim() == 1:
        doc_ids, lang_ids = doc_ids[None], lang_ids[None]
    B, S = doc_ids.shape
    causal = B * S * (S + 1) // 2
    if mode == "causal":
        return causal
    total = 0
    for b in range(B):
        doc, lang = doc_ids[b].long(), lang_ids[b].long()
        same_doc = _same_key_prefix_counts(doc)  # docs are single-language: same doc => same lang
        if mode == "document":
            total += int(same_doc.sum())
        elif mode == "xlda":
            same_lang = _same_key_prefix_counts(lang)
            # allowed = causal - (same language, different document)
            total += S * (S + 1) // 2 - int((same_lang - same_doc).sum())
        else:
            raise ValueError(f"unknown mask mode {mode!r}; expected xlda, document or causal")
    return total


def default_peak_tflops() -> Optional[float]:
    """The device's dense bf16 peak if it is a known GPU, else None (no MFU is reported)."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for key, peak in PEAK_BF16_DENSE_TFLOPS:
            if key in name:
                return peak
    return None


def mfu(flops: float, seconds: float, world_size: int, peak_tflops: float) -> float:
    return flops / (seconds * world_size * peak_tflops * 1e12)


class MetricsLogger:
    """Aggregates per-iteration numbers; prints every ``log_interval``; mirrors to TensorBoard."""

    def __init__(self, logging_config, flops_model: FlopsModel, world_size: int,
                 rank: int = 0, print_fn=print, jsonl_path=None, shown=None):
        self.cfg = logging_config
        self.shown = dict(shown or {})  # a task's metrics for the log line: name -> format
        self.flops_model = flops_model
        self.world_size = world_size
        self.rank = rank
        self.peak = logging_config.peak_tflops or default_peak_tflops()
        self.print = print_fn
        self.writer = None
        if rank == 0 and logging_config.tensorboard_dir:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=logging_config.tensorboard_dir)
        self.history: list[dict] = []
        self.jsonl = None
        if rank == 0 and jsonl_path:
            import os

            os.makedirs(os.path.dirname(os.path.abspath(jsonl_path)), exist_ok=True)
            self.jsonl = open(jsonl_path, "a")
        self._reset_window()

    def _write(self, kind: str, entry: dict):
        if self.jsonl is not None:
            import json

            self.jsonl.write(json.dumps({"kind": kind, **entry}) + "\n")
            self.jsonl.flush()

    def _reset_window(self):
        self._t0 = time.perf_counter()
        self._w = {"tokens": 0, "flops": 0, "iters": 0, "pairs": 0, "causal_pairs": 0}

    def record(self, iteration: int, losses: dict, lr: float, grad_norm, num_tokens: int,
               pairs: int, causal_pairs: int, mtp_losses: Optional[dict] = None,
               extra: Optional[dict] = None) -> Optional[dict]:
        """Record one finished iteration (numbers summed over the whole DP world)."""
        w = self._w
        w["tokens"] += num_tokens
        w["pairs"] += pairs
        w["causal_pairs"] += causal_pairs
        w["flops"] += self.flops_model.train_flops(num_tokens, pairs)
        w["iters"] += 1
        entry = {"iteration": iteration, "lr": lr, **losses, **(mtp_losses or {})}
        if grad_norm is not None:
            entry["grad_norm"] = float(grad_norm)
        entry.update(extra or {})
        if iteration % self.cfg.log_interval:
            self.history.append(entry)
            self._write("train", entry)
            return None
        dt = max(time.perf_counter() - self._t0, 1e-9)
        entry["tokens_per_s"] = w["tokens"] / dt
        entry["tflops_per_device"] = w["flops"] / dt / self.world_size / 1e12
        if self.peak:
            entry["mfu"] = mfu(w["flops"], dt, self.world_size, self.peak)
        entry["mask_density"] = w["pairs"] / max(w["causal_pairs"], 1)
        entry["ms_per_iter"] = 1000 * dt / w["iters"]
        self.history.append(entry)
        self._write("train", entry)
        if self.rank == 0:
            self.print(format_entry(entry, self.shown))
            if self.writer is not None:
                for k, v in entry.items():
                    if k != "iteration" and isinstance(v, (int, float)) and math.isfinite(v):
                        self.writer.add_scalar(k.replace(" ", "_"), v, iteration)
                self.writer.flush()
        self._reset_window()
        return entry

    @contextlib.contextmanager
    def paused(self):
        """Time spent inside (eval, checkpoint saves) does not count toward throughput."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self._t0 += time.perf_counter() - t

    def log_eval(self, iteration: int, losses: dict):
        self._write("eval", {"iteration": iteration, **losses})
        if self.rank == 0:
            self.print(f" eval @ {iteration:6d} | " +
                       " | ".join(f"{k} {v:.4f}" for k, v in losses.items()))
            if self.writer is not None:
                for k, v in losses.items():
                    self.writer.add_scalar("eval/" + k.replace(" ", "_"), v, iteration)
                self.writer.flush()

    def close(self):
        if self.jsonl is not None:
            self.jsonl.close()
        if self.writer is not None:
            self.writer.close()


def format_entry(e: dict, shown=None) -> str:
    """One log line: the losses, lr, grad norm, throughput and mask numbers, then ``shown``
    (a task's metrics: name -> format string, e.g. ``{"reward_accuracy": "reward acc {:.3f}"}``)."""
    parts = [f"iter {e['iteration']:6d}", f"lr {e['lr']:.3e}"]
    for k, v in e.items():
        if k.endswith("loss"):
            parts.append(f"{k} {v:.4f}")
    if "grad_norm" in e:
        parts.append(f"grad norm {e['grad_norm']:.3f}")
    if "tokens_per_s" in e:
        parts += [f"{e['ms_per_iter']:.0f} ms/it", f"tok/s {e['tokens_per_s']:.0f}",
                  f"TFLOP/s/dev {e['tflops_per_device']:.3f}"]
        if "mfu" in e:
            parts.append(f"MFU {100 * e['mfu']:.2f}%")
        parts.append(f"mask density {e['mask_density']:.3f}")
    if "kv_expansion" in e:
        parts.append(f"kv expansion {e['kv_expansion']:.2f} (max {e['kv_expansion_max']:.2f})")
    if e.get("kv_over_cap"):
        parts.append(f"{e['kv_over_cap']} samples over the kv cap")
    for name, fmt in (shown or {}).items():
        if name in e:
            parts.append(fmt.format(e[name]))
    return " | ".join(parts)
