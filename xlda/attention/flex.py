"""flex_attention executor: a mask_mod from doc/lang ids and one BlockMask per micro-batch.

The BlockMask is cached on MaskParams (MaskParams.block_mask) and shared by all layers. It is
built from per-block counts of documents and languages, never from a dense S x S mask (which is
what ``create_block_mask`` without compilation materialises: seconds and hundreds of MB at 4K):
for a key block K strictly below a query block Q every pair is causal, and since a document has
one language,

    visible(Q, K) = sum_{q in Q} ( #{k in K: doc k = doc q} + |K| - #{k in K: lang k = lang q} )

(``document`` mode: only the first term). visible = 0 -> skipped block, = |Q||K| -> full block
(no mask_mod), else partial; diagonal blocks are partial, blocks above it skipped. Memory is
O(B * S/128 * S) int32, no compilation, no host round trip (the result is the exact block
structure create_block_mask finds; tests compare them). On CUDA
flex_attention is compiled (eager flex materialises the full score matrix); on CPU eager forward
works but backward raises NotImplementedError in torch <= 2.13.
"""
from __future__ import annotations

import functools

import torch


def mask_mod_for(doc_ids: torch.Tensor, lang_ids: torch.Tensor, mode: str):
    if mode == "causal":
        def mask_mod(b, h, q, kv):
            return kv <= q
    elif mode == "document":
        def mask_mod(b, h, q, kv):
            return (kv <= q) & (doc_ids[b, kv] == doc_ids[b, q])
    elif mode == "xlda":
        def mask_mod(b, h, q, kv):
            return (kv <= q) & (
                (doc_ids[b, kv] == doc_ids[b, q]) | (lang_ids[b, kv] != lang_ids[b, q])
            )
    else:
        raise ValueError(f"unknown attention mask mode {mode!r}")
    return mask_mod


BLOCK = 128  # flex_attention's default sparse block size


def id_bound(S: int) -> int:
    """doc ids are numbered per sample (< S); language ids index the run's languages (< 1024)."""
    return max(S, 1024)


def _visible_below_diagonal(doc: torch.Tensor, lang: torch.Tensor, mode: str, block: int) -> torch.Tensor:
    """int32 [B, nq, nk]: visible (q, k) pairs of each block pair, valid where k-block < q-block."""
    B, S = doc.shape
    nb = -(-S // block)
    pad = nb * block - S
    valid = torch.nn.functional.pad(torch.ones(B, S, dtype=torch.int32, device=doc.device), (0, pad))
    vb = valid.view(B, nb, block)

    def same_key_counts(ids):
        # counts[b, kb, v] = tokens of key block kb with id v (ids < id_bound(S)), then for each
        # query token q: tokens of key block kb sharing q's id.
        keys = torch.nn.functional.pad(ids.long(), (0, pad))
        counts = torch.zeros(B, nb, id_bound(S), dtype=torch.int32, device=doc.device)
        counts.scatter_add_(2, keys.view(B, nb, block), vb)
        return counts.gather(2, keys[:, None, :].expand(B, nb, nb * block))  # [B, nk, Sp]

    per_q = same_key_counts(doc)
    if mode == "xlda":
        per_q = per_q + vb.sum(-1)[:, :, None] - same_key_counts(lang)
    per_q = per_q * valid[:, None, :]
    return per_q.view(B, nb, nb, block).sum(-1, dtype=torch.int32).transpose(1, 2)


def _ordered(blocks: torch.Tensor):
    """(num_blocks [.., nq], indices [.., nq, nk]) as flex orders them: set blocks first, by index."""
    blocks = blocks.to(torch.int32)
    idx = torch.argsort(blocks, dim=-1, descending=True, stable=True)
    return blocks.sum(-1, dtype=torch.int32), idx.to(torch.int32)


def block_structure(doc: torch.Tensor, lang: torch.Tensor, mode: str, block: int = BLOCK):
    """(partial, full): bool [B, 1, nq, nk] block masks of the rule, without a dense mask."""
    B, S = doc.shape
    if doc.device.type == "cpu":  # (on a GPU this check would wait for the device)
        for name, t in (("doc_ids", doc), ("lang_ids", lang)):
            bound = S if name == "doc_ids" else id_bound(S)
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= bound):
                raise ValueError(f"{name} must lie in [0, {bound}) (doc ids numbered per sample, "
                                 "CONTRACTS.md 'Samples')")
    nb = -(-S // block)
    r = torch.arange(nb, device=doc.device)
    below = (r[None, :] < r[:, None]).expand(B, nb, nb)
    diag = (r[None, :] == r[:, None]).expand(B, nb, nb)
    if block == 1:  # a 1 x 1 diagonal block is the token itself: always visible, hence full
        below, diag = below | diag, diag & False
    if mode == "causal":
        full = below & (nb * block == S or r[:, None] < nb - 1)  # a padded tail row is partial
        partial = diag | (below & ~full)
    else:
        vis = _visible_below_diagonal(doc, lang, mode, block)
        full = below & (vis == block * block)
        partial = diag | (below & (vis > 0) & ~full)
    return partial[:, None], full[:, None]


def build_block_mask(mask_params, q_len: int, kv_len: int, block: int = BLOCK):
    from torch.nn.attention.flex_attention import BlockMask

    doc, lang = mask_params.doc_ids, mask_params.lang_ids
    S = doc.shape[1]
    if q_len != S or kv_len != S:
        raise ValueError(f"flex block mask: query/key lengths {q_len}/{kv_len} must equal the "
                         f"sequence length {S} of doc_ids (self-attention over the packed sample)")
    partial, full = block_structure(doc, lang, mask_params.mode, block)
    kv_num, kv_idx = _ordered(partial)
    full_num, full_idx = _ordered(full)
    return BlockMask.from_kv_blocks(
        kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block,
        mask_mod=mask_mod_for(doc, lang, mask_params.mode), seq_lengths=(q_len, kv_len))


@functools.lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_attention_bhsd(q, k, v, block_mask, scale=None, compiled: bool | None = None):
    """q: [B, H, S, D]; k, v: [B, H_kv, S, D]. GQA handled by flex (enable_gqa)."""
    from torch.nn.attention.flex_attention import flex_attention

    if compiled is None:
        compiled = q.is_cuda
    fn = _compiled_flex() if compiled else flex_attention
    return fn(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1])
