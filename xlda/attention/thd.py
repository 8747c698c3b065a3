"""The THD decomposition of the XLDA mask (what TE's varlen kernel runs), in pure torch.

Tokens of the micro-batch are flattened to T = B*S rows (row-major: b*S + s). Each query
segment j (a maximal run of equal doc id) is one varlen segment; its key/value set is

    [earlier tokens of the row in other languages or of the same document] ++ [segment j]

A document may occur in several runs of one row: the packer cuts a long document at a run
boundary and may resume it after another language within the same sample. The later run then
also sees the document's earlier pieces, exactly as the dense mask says.

gathered from the (post-RoPE) K/V with one index. Inside a (q-segment, kv-set) pair the mask is
causal aligned bottom-right: query i of a length-n segment with a length-L kv set sees kv rows
0 .. i + (L - n). This equals the dense XLDA mask because every kv token before the document is
earlier than every query of the document. ``document`` mode: kv set = the document;
``causal``: one segment per row (kv set = the whole row).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from xlda.attention.mask import check_ids, check_mode


@dataclass
class ThdLayout:
    cu_seqlens_q: torch.Tensor  # int32 [N+1] offsets of the query segments in the flat T tokens
    cu_seqlens_kv: torch.Tensor  # int32 [N+1] offsets of the kv sets in the gathered K/V
    kv_index: torch.Tensor  # int64 [T_kv] flat token index (b*S + s) of each gathered K/V row
    max_seqlen_q: int
    max_seqlen_kv: int
    num_tokens: int  # T = B*S
    attended_pairs: int  # visible (q, k) pairs: sum over segments of n*(L-n) + n(n+1)/2
    causal_pairs: int  # B * S(S+1)/2, what plain causal attention computes

    _TENSORS = ("cu_seqlens_q", "cu_seqlens_kv", "kv_index")

    def _map(self, fn) -> "ThdLayout":
        return dataclasses.replace(self, **{k: fn(getattr(self, k)) for k in self._TENSORS})

    def to(self, device, non_blocking: bool = False) -> "ThdLayout":
        """The layout on ``device`` (built on the CPU by the loader workers, copied once)."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "ThdLayout":
        """Called by the DataLoader's pin-memory thread, so the copy to the GPU is asynchronous."""
        return self._map(lambda t: t.pin_memory())

    @property
    def num_segments(self) -> int:
        return self.cu_seqlens_q.numel() - 1

    @property
    def expansion_ratio(self) -> float:
        """Gathered K/V rows per token: 1.0 for document/causal, >1 for xlda."""
        return self.kv_index.numel() / max(self.num_tokens, 1)

    @property
    def flops_ratio(self) -> float:
        """Attention FLOPs (visible pairs; kernels skip masked blocks) relative to causal."""
        return self.attended_pairs / max(self.causal_pairs, 1)


def doc_segments(doc_row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(starts, ends) of the maximal runs of equal doc id in one row."""
    S = doc_row.numel()
    change = torch.ones(S, dtype=torch.bool, device=doc_row.device)
    change[1:] = doc_row[1:] != doc_row[:-1]
    starts = torch.nonzero(change).flatten()
    ends = torch.cat([starts[1:], starts.new_tensor([S])])
    return starts, ends


def build_thd_layout(doc_ids: torch.Tensor, lang_ids: torch.Tensor, mode: str = "xlda") -> ThdLayout:
    check_mode(mode)
    check_ids(doc_ids, lang_ids)
    B, S = doc_ids.shape
    dev = doc_ids.device
    q_lens, kv_lens, kv_index = [], [], []
    pairs = 0
    t = torch.arange(S, device=dev)
    for b in range(B):
        if mode == "causal":
            q_lens.append(torch.tensor([S], device=dev))
            kv_lens.append(torch.tensor([S], device=dev))
            kv_index.append(t + b * S)
            pairs += S * (S + 1) // 2
            continue
        doc, lang = doc_ids[b], lang_ids[b]
        starts, ends = doc_segments(doc)
        seg_doc = doc[starts]
        before = t[None, :] < starts[:, None]  # [N, S]
        in_seg = ~before & (t[None, :] < ends[:, None])
        # Earlier pieces of the same document (a resumed document), then the segment itself.
        incl = in_seg | (before & (doc[None, :] == seg_doc[:, None]))
        if mode == "xlda":
            seg_lang = lang[starts]
            seg_of_tok = torch.repeat_interleave(torch.arange(starts.numel(), device=dev), ends - starts)
            bad = lang != seg_lang[seg_of_tok]
            if bool(bad.any()):
                s = int(torch.nonzero(bad)[0])
                raise ValueError(
                    f"lang_ids[{b}]: token {s} has language {int(lang[s])} but its document "
                    f"{int(doc[s])} starts with {int(lang[starts[seg_of_tok[s]]])}; xlda needs "
                    "one language per document"
                )
            incl = incl | (before & (lang[None, :] != seg_lang[:, None]))
        seg, tok = torch.nonzero(incl, as_tuple=True)  # row-major: per segment, tokens in order
        n = ends - starts
        L = torch.bincount(seg, minlength=starts.numel())
        q_lens.append(n)
        kv_lens.append(L)
        kv_index.append(tok + b * S)
        pairs += int((n * (L - n) + n * (n + 1) // 2).sum())
    q_lens_t = torch.cat(q_lens)
    kv_lens_t = torch.cat(kv_lens)
    zero = torch.zeros(1, dtype=torch.int32, device=dev)
    return ThdLayout(
        cu_seqlens_q=torch.cat([zero, torch.cumsum(q_lens_t, 0).to(torch.int32)]),
        cu_seqlens_kv=torch.cat([zero, torch.cumsum(kv_lens_t, 0).to(torch.int32)]),
        kv_index=torch.cat(kv_index).long(),
        max_seqlen_q=int(q_lens_t.max()),
        max_seqlen_kv=int(kv_lens_t.max()),
        num_tokens=B * S,
        attended_pairs=pairs,
        causal_pairs=B * S * (S + 1) // 2,
    )


def bottom_right_causal(n: int, L: int, device=None) -> torch.Tensor:
    """bool [n, L]: query i sees kv rows 0 .. i + (L - n)."""
    i = torch.arange(n, device=device)[:, None]
    m = torch.arange(L, device=device)[None, :]
    return m <= i + (L - n)


def varlen_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_kv: torch.Tensor,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Differentiable varlen attention with bottom-right causal masks, one SDPA per segment.

    q: [T_q, H, D]; k, v: [T_kv, H_kv, D] (already gathered). Returns [T_q, H, D].
    """
    H, Hkv = q.shape[1], k.shape[1]
    if H % Hkv:
        raise ValueError(f"query heads {H} not divisible by kv heads {Hkv}")
    cq = cu_seqlens_q.tolist()
    ck = cu_seqlens_kv.tolist()
    outs = []
    for i in range(len(cq) - 1):
        qs = q[cq[i] : cq[i + 1]].transpose(0, 1)  # [H, n, D]
        ks = k[ck[i] : ck[i + 1]].transpose(0, 1)
        vs = v[ck[i] : ck[i + 1]].transpose(0, 1)
        if H != Hkv:
            ks = ks.repeat_interleave(H // Hkv, dim=0)
            vs = vs.repeat_interleave(H // Hkv, dim=0)
        mask = bottom_right_causal(qs.shape[1], ks.shape[1], q.device)
        o = torch.nn.functional.scaled_dot_product_attention(
            qs, ks, vs, attn_mask=mask, dropout_p=dropout_p, scale=scale
        )
        outs.append(o.transpose(0, 1))
    return torch.cat(outs, 0)


def thd_attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: ThdLayout, scale=None, dropout_p=0.0
) -> torch.Tensor:
    """q, k, v: [T, heads, D] flat tokens (b*S + s). Gathers K/V with the layout's one index."""
    kg = k.index_select(0, layout.kv_index)
    vg = v.index_select(0, layout.kv_index)
    return varlen_attention_reference(
        q, kg, vg, layout.cu_seqlens_q, layout.cu_seqlens_kv, scale=scale, dropout_p=dropout_p
    )


def fused_varlen_kernel():
    """(name, fn) of a fused varlen kernel usable for the THD layout on this machine, or None.

    fn(q, k, v, cu_q, cu_kv, max_q, max_kv, scale) -> [T_q, H, D], causal bottom-right aligned
    (flash-attention's causal convention for varlen, which the GPU check verifies against the
    oracle). Tries flash_attn, then torch.nn.attention.varlen.varlen_attn; CUDA only.
    """
    if not torch.cuda.is_available():
        return None
    try:
        from flash_attn import flash_attn_varlen_func

        def fa(q, k, v, cu_q, cu_kv, max_q, max_kv, scale=None):
            return flash_attn_varlen_func(q, k, v, cu_q, cu_kv, max_q, max_kv,
                                          softmax_scale=scale, causal=True)

        return "flash_attn", fa
    except ImportError:
        pass
    try:
        import inspect

        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    params = inspect.signature(varlen_attn).parameters

    def tv(q, k, v, cu_q, cu_kv, max_q, max_kv, scale=None):
        if q.shape[1] != k.shape[1] and "enable_gqa" not in params:
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
        kw = {"scale": scale}
        if "enable_gqa" in params:
            kw["enable_gqa"] = q.shape[1] != k.shape[1]
        if "window_size" in params:
            kw["window_size"] = (-1, 0)  # causal
        else:
            kw["is_causal"] = True
        return varlen_attn(q, k, v, cu_q, cu_kv, max_q, max_kv, **kw)

    return "torch.varlen_attn", tv


def thd_attention_fused(q, k, v, layout: ThdLayout, scale=None) -> torch.Tensor:
    """Like thd_attention_reference but with a fused varlen kernel (CUDA, fp16/bf16): a
    measuring stick for benchmarks/bench_attention.py and the GPU checks, not a training path.
    The ``thd`` executor always runs the reference; the fused THD path of a run is ``te``
    (Transformer Engine's THD attention, xlda.attention.te)."""
    kernel = fused_varlen_kernel()
    if kernel is None:
        raise RuntimeError("no fused varlen kernel (flash_attn / torch varlen_attn on CUDA) available")
    kg = k.index_select(0, layout.kv_index)
    vg = v.index_select(0, layout.kv_index)
    return kernel[1](q, kg, vg, layout.cu_seqlens_q, layout.cu_seqlens_kv,
                     layout.max_seqlen_q, layout.max_seqlen_kv, scale)
