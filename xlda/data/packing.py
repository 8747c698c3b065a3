"""The XLDA packing index: which pieces of which documents make up each sample.

The rule (index format 4):

* The global token stream is whole documents, one after another, each language's documents in
  its own seeded epoch shuffle (every document once per epoch; upsampled languages repeat whole
  epochs). Samples are consecutive windows of S input tokens (+1 label token, as Megatron) of
  that stream, served in a seeded shuffled order.
* Shares are a hard property (the band). Let e_l(x) = T_l(x) - P_l x, language l's tokens in
  the first x stream tokens minus its share of them. The walk keeps every e_l inside
  [-D, +D], D = S * clamp(N / 400, 0.5, 8) for an index of N windows: a piece ends (is cut)
  where its language would pass +D, or where another language would fall below -D; a language
  a band behind is switched to first; a free switch never goes to a language without room.
  So over the N S tokens of the index |share_l - P_l| <= D / (N S) <= max(0.5 / N, 1 / 400):
  within 0.005 for N >= 100 windows and 0.0025 for N >= 200, at any S, rho and document
  length. The build measures the realized shares and refuses (ValueError, naming the
  language) an index outside 0.01 (N >= 100) or 0.005 (N >= 1000); never a silent other mix.
* Feasibility: every window holds >= 1 token of a language other than the largest one (each
  such token lies in one window), so the guarantee needs (1 - max P) S >= 1. A mix below that
  is refused before anything is built (`check_mix`), naming the language and the flag.
* rho: at a document boundary the language switches with probability r_L for the language L
  just read. r_L = C (1 - P_L) m_L (m_L: mean document length) with C set so the switch rate
  over all boundaries is rho and token shares are P(l) when the next language is drawn from P
  restricted to the others (run visits ~ P_l (1 - P_l), tokens per run ~ 1 / (1 - P_l)).
  A mix can only switch so often with whole documents (each switch needs a minority document
  beside it): when rho asks for more, C is capped so the most-switching language switches
  at every boundary (`rho_effective` in the stats; the build logs it). A token-deficit
  feedback (buffer B = 2 windows) on r_L and on the next-language weights keeps e_l near 0,
  so the band rarely has to cut.
* Guarantee (>= 2 languages in every sample, by construction): every window must hold a
  language change strictly inside its S input tokens. At a boundary inside a window that has
  none yet, the language may stay only if the next same-language document still ends inside
  the window; otherwise the switch is forced (counted). Where no boundary is left (a document
  longer than the room, or covering a whole window) a document is cut inside the window; its
  rest is the first thing its language reads next time.
* Cutting as little as the mix allows: a cut is only made for the guarantee or the band, and
  the guarantee prefers pieces that straddle a window boundary (contiguous in the stream, so
  no context is lost): a minority document whose end lies one token into the next window
  serves both windows, and the switch is made at the first boundary where the next document
  would reach past the window. Whole documents cannot give both the guarantee and P when the
  minority languages' share of a window, (1 - P_max) S, is small next to their documents
  (S = 256 with 450-token help pages: ~38 minority tokens per window): then the band cuts
  minority documents into window-sized pieces, which is the cost of the mix (reported).
  A cut document keeps its document id within a sample (the dataset), so a piece resumed in
  the same sample still sees its earlier part.
* Labels at a cut: the last token before a cut has the next document's first token as its
  label, so loss_mask is 0 there (the dataset does it; EOD -> next document is as Megatron).
* Affinity (``affinity_p`` > 0 with per-document ``groups``: documents that translate or
  discuss each other share a group): at a boundary inside a window, after a whole document of
  a group, with probability p the walk brings a member of that group in the language it would
  switch to (when that language has room: shares and the guarantee hold as above) to the front
  of that language's epoch and switches to it, so the pair sits side by side in one window. A
  swap within an epoch keeps every document once per epoch; p = 0 (or no groups) draws nothing
  and gives the index without affinity bit for bit. The stats give the attempts, the swaps and
  the realized rate measured on the index (documents preceded in their window by a member of
  their group in another language, per document started).

Stored (all memory-mapped, int32 where values fit): per piece (a whole document or a cut part
of one) its dataset document id and language; the cut pieces' (piece, offset, length); per
sample its first piece and offset (as Megatron's sample index); the shuffle. O(docs +
samples), built by one sequential walk (the compiled `_packing_kernel.pack`, or its Python
twin `packing_ref.pack`), in chunks, so peak memory is the per-language shuffles plus a chunk.
The stats (realized shares, switch rate, cuts and pieces per document per language) go into
the index's description.json and the build's one-line summary (`summary_line`).
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from xlda.data import packing_ref as ref
from xlda.data.sampling import check_mix, check_realized

logger = logging.getLogger(__name__)

FORMAT_VERSION = 4
ARRAY_NAMES = ("piece_doc", "piece_lang", "cut_piece", "cut_off", "cut_len", "sample_piece",
               "sample_off", "shuffle")
CHUNK = 1 << 22  # pieces per kernel call: bounded buffers, progress lines
# The deficit feedback's buffer B, in windows. v2 used 64 (r_L exact, shares off by up to B/T);
# with the band holding the shares, a small B keeps e_l near 0 so the band seldom cuts
# (measured, 7B mix at S = 4096: band cuts per sample 0.12 at B = 16, 0.06 at 8, 0.006 at 2).
BUFFER_WINDOWS = 2
# The band D = S * clamp(N / BAND_PER, BAND_MIN, BAND_MAX): |share - P| <= D / (N S).
BAND_MIN, BAND_MAX, BAND_PER = 0.5, 8.0, 400.0


def band_tokens(seq_length: int, num_samples: int) -> float:
    return float(seq_length) * min(BAND_MAX, max(BAND_MIN, num_samples / BAND_PER))


def share_tolerance(num_samples: int) -> Optional[float]:
    """The promised max |realized share - P| of an index of num_samples windows (None below
    100 windows, where the band D / (N S) is all there is)."""
    if num_samples >= 1000:
        return 0.005
    if num_samples >= 100:
        return 0.01
    return None


@dataclass
class PackedIndex:
    """Pieces of the stream and the samples' starting points; see the module docstring."""

    piece_doc: np.ndarray  # int32/64 [n_pieces]: dataset document id (within its language)
    piece_lang: np.ndarray  # int8 [n_pieces]
    cut_piece: np.ndarray  # int32/64 [n_cut], increasing: pieces that are not a whole document
    cut_off: np.ndarray  # int32 [n_cut]: the piece's offset in its document
    cut_len: np.ndarray  # int32 [n_cut]: the piece's length
    sample_piece: np.ndarray  # int32/64 [n_samples]: piece holding the sample's first token
    sample_off: np.ndarray  # int32 [n_samples]: offset of that token in the piece
    shuffle: np.ndarray  # int32/64 [n_samples]: dataset idx -> sample number
    stats: dict = field(default_factory=dict, compare=False)
    description: dict = field(default_factory=dict, compare=False)  # set when read from cache
    _plain: Optional[tuple] = field(default=None, init=False, repr=False, compare=False)

    def arrays(self) -> dict:
        return {name: getattr(self, name) for name in ARRAY_NAMES}

    def __len__(self) -> int:
        return int(self.shuffle.shape[0])

    def sample_spans(self, sample: int, seq_length: int, doc_length: Callable[[int, int], int],
                     extra: int = 1) -> list[tuple]:
        """(lang, doc, offset, length, cut) spans of sample number `sample` (unshuffled),
        covering its seq_length + extra tokens; cut: the span is followed by another document
        while its own continues (its last token's label is not its document's)."""
        pd, pl, cp, co, cl, sp, so = self._views()
        p, skip = int(sp[sample]), int(so[sample])
        want = seq_length + extra
        j = int(np.searchsorted(cp, cp.dtype.type(p)))  # first cut entry at/after piece p
        out = []
        while want > 0:
            lang, doc = int(pl[p]), int(pd[p])
            if j < cp.shape[0] and int(cp[j]) == p:
                off, n = int(co[j]), int(cl[j])
                cut = off + n < doc_length(lang, doc)
                j += 1
            else:
                off, n, cut = 0, doc_length(lang, doc), False
            take = min(n - skip, want)
            out.append((lang, doc, off + skip, take, cut and take == n - skip))
            want -= take
            skip = 0
            p += 1
        return out

    def _views(self) -> tuple:
        """Plain ndarray views of the (memmapped) arrays: indexing a memmap costs ~10x more."""
        if self._plain is None:
            self._plain = tuple(np.asarray(getattr(self, n)) for n in ARRAY_NAMES[:-1])
        return self._plain


def default_num_samples(tokens: Sequence[int], probs: Sequence[float], seq_length: int,
                        extra: int = 1) -> int:
    """Megatron's num_samples=None means one epoch: here, one epoch of the limiting language."""
    budget = min(n / p for n, p in zip(tokens, probs) if p > 0)
    return max(1, int((budget - extra) // seq_length))


def switch_rates(probs: np.ndarray, mean_doc: np.ndarray, rho: float) -> tuple:
    """(r_l per language, effective rho): see the module docstring."""
    probs = np.asarray(probs, dtype=np.float64)
    active = probs > 0
    p, m = probs[active], np.asarray(mean_doc, dtype=np.float64)[active]
    z = float(np.sum(p * (1.0 - p)))
    c = rho * float(np.sum(p / m)) / z
    r = np.zeros_like(probs)
    r[active] = c * (1.0 - p) * m
    top = float(r.max())
    if top > 1.0:
        r /= top
        rho = rho / top
    return r, rho


def _kernel(backend: Optional[str]):
    if backend == "python":
        return None
    if backend not in (None, "c"):
        raise ValueError(f"backend={backend!r}: use 'python', 'c' or None")
    try:
        from xlda.data import _packing_kernel
    except ImportError:
        if backend == "c":
            raise ImportError("xlda.data._packing_kernel is not built: run `pip install -e .` "
                              "(needs a C compiler), or use backend='python'") from None
        return None
    return _packing_kernel


def _fits32(hi: int) -> bool:
    return hi < 2**31 - 1


class _Sink:
    """One output array, grown chunk by chunk: appended to `path` (raw, so peak memory is one
    chunk) or, without a path, kept in RAM."""

    def __init__(self, dtype, path: Optional[str] = None):
        self.dtype, self.path, self.parts, self.n = np.dtype(dtype), path, [], 0
        self.f = open(path, "wb") if path else None

    def add(self, a: np.ndarray) -> None:
        if a.size:
            a = a.astype(self.dtype, copy=True)
            self.n += a.size
            if self.f is not None:
                self.f.write(a.tobytes())
            else:
                self.parts.append(a)

    def array(self) -> np.ndarray:
        if self.f is not None:
            self.f.close()
            return open_raw(self.path, self.dtype, self.n)
        if not self.parts:
            return np.zeros(0, dtype=self.dtype)
        out = np.concatenate(self.parts) if len(self.parts) > 1 else self.parts[0]
        self.parts = []
        return out


def open_raw(path: str, dtype, n: int) -> np.ndarray:
    """A raw array file, memory-mapped read-only (np.memmap refuses empty files)."""
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,))


def build_packed_index(
    doc_lengths: Sequence[np.ndarray],
    doc_ids: Sequence[range],
    probs: Sequence[float],
    rho: float,
    seq_length: int,
    num_samples: int,
    seed: int,
    split_id: int = 0,
    extra: int = 1,
    backend: Optional[str] = None,
    progress: Optional[Callable[[str], None]] = None,
    out_dir: Optional[str] = None,
    languages: Optional[Sequence[str]] = None,
    groups: Optional[Sequence[np.ndarray]] = None,
    affinity_p: float = 0.0,
) -> PackedIndex:
    """Build the index. doc_lengths[l]: lengths of language l's documents in this split (int32;
    a memmap is fine); doc_ids[l]: their dataset ids, a range. Callers validate (>= 2 languages
    with P > 0, none of them empty). backend: "c" (the compiled walk; error if not built),
    "python" (the reference twin) or None (c if built); both give bit-identical indexes.
    out_dir: write the arrays there as raw `<name>.bin` files while building (memory-mapped in
    the result) instead of holding them in RAM. languages: names for messages and the stats.
    Raises ValueError for a mix the guarantee cannot meet (`check_mix`) and, as a backstop, for
    an index whose realized shares miss P by more than `share_tolerance`.
    groups[l]: the group of each of language l's documents (int64, aligned with doc_lengths[l];
    0: none), read with affinity_p in [0, 1] (see the module docstring)."""
    S = int(seq_length)
    if S < 2:
        raise ValueError(f"seq_length={S}: a sample needs >= 2 tokens to hold 2 languages")
    n_lang = len(probs)
    names = list(languages) if languages is not None else [f"#{l}" for l in range(n_lang)]
    probs = np.asarray(probs, dtype=np.float64)
    check_mix(names, list(probs), S)
    lengths = [np.ascontiguousarray(np.asarray(x), dtype=np.int32) for x in doc_lengths]
    for l, ids in enumerate(doc_ids):
        if not (isinstance(ids, range) and ids.step == 1 and len(ids) == lengths[l].shape[0]):
            raise ValueError(f"doc_ids[{l}] must be a range(start, start + n_docs)")
    tokens = np.array([float(x.sum(dtype=np.int64)) for x in lengths])
    n_docs = np.array([int(np.count_nonzero(x)) for x in lengths], dtype=np.float64)
    mean_doc = tokens / np.maximum(n_docs, 1.0)
    rswitch, rho_eff = switch_rates(probs, np.maximum(mean_doc, 1.0), rho)
    if rho_eff < rho * (1 - 1e-9):
        logger.warning("--xlda-rho %.3g is more than this mix allows with whole documents; "
                       "switching at the most %.3g of document boundaries", rho, rho_eff)
    need = num_samples * S + extra
    band = band_tokens(S, num_samples)
    key = int(np.random.default_rng([seed, split_id, 9]).integers(0, 2**63 - 1))
    kern = _kernel(backend)
    walk = kern.pack if kern is not None else ref.pack
    if affinity_p > 0 and kern is not None and not getattr(kern, "AFFINITY", False):
        walk = ref.pack  # a kernel built before affinity existed

    # each language's document order, epoch by epoch (int32, shuffled in place: the largest
    # arrays of the build; the walk skips empty documents)
    def epoch(l: int, e: int) -> np.ndarray:
        perm = np.arange(lengths[l].shape[0], dtype=np.int32)
        np.random.default_rng([seed, split_id, 2, l, e]).shuffle(perm)
        return perm

    orders, n_epochs = [], [0] * n_lang
    for l in range(n_lang):
        if probs[l] > 0:
            want = int(math.ceil(need * probs[l] * 1.02 / max(tokens[l], 1.0)))
            n_epochs[l] = max(1, want)
            orders.append(np.concatenate([epoch(l, e) for e in range(n_epochs[l])]))
        else:
            orders.append(np.zeros(0, dtype=np.int32))
    id_first = np.array([ids.start for ids in doc_ids], dtype=np.int64)
    doc_t = np.int32 if _fits32(max([ids.stop for ids in doc_ids] + [0])) else np.int64
    piece_t = np.int32 if _fits32(need) else np.int64  # pieces <= tokens
    path = (lambda n: os.path.join(out_dir, n + ".bin")) if out_dir else (lambda n: None)
    sinks = {n: _Sink(t, path(n)) for n, t in (("piece_doc", doc_t), ("piece_lang", np.int8),
                                       ("cut_piece", piece_t), ("cut_off", np.int32),
                                       ("cut_len", np.int32), ("sample_piece", piece_t),
                                       ("sample_off", np.int32))}
    cap = CHUNK
    bufs = {"piece_doc": np.empty(cap, np.int64), "piece_lang": np.empty(cap, np.int8),
            "cut_piece": np.empty(cap, np.int64), "cut_off": np.empty(cap, np.int32),
            "cut_len": np.empty(cap, np.int32), "sample_piece": np.empty(cap, np.int64),
            "sample_off": np.empty(cap, np.int32)}
    if not 0.0 <= affinity_p <= 1.0:
        raise ValueError(f"--xlda-affinity-p {affinity_p}: must be in [0, 1]")
    affinity = None
    if affinity_p > 0:
        if groups is None:
            raise ValueError("--xlda-affinity-p > 0 needs the documents' groups "
                             "(--xlda-affinity-key)")
        affinity = affinity_tables(groups, lengths, affinity_p,
                                   int(np.random.default_rng([seed, split_id, 11]).integers(
                                       0, 2**63 - 1)))
    state = np.zeros(ref.ST_LANG + 3 * n_lang, dtype=np.int64)
    state[ref.ST_PHASE] = ref.PHASE_START
    state[ref.ST_SWWIN] = -1
    t0, last = time.time(), time.time()
    while True:
        code, lang = walk(state, probs, rswitch, float(BUFFER_WINDOWS * S), float(band), key, S,
                          need, num_samples,
                          lengths, orders, id_first, *bufs.values(),
                          *(() if affinity is None else (affinity,)))
        if code == ref.NEED_EPOCH:  # an upsampled language: one more shuffled epoch
            orders[lang] = np.concatenate([orders[lang], epoch(lang, n_epochs[lang])])
            n_epochs[lang] += 1
            continue
        for name, k in (("piece_doc", ref.ST_OUTP), ("piece_lang", ref.ST_OUTP),
                        ("cut_piece", ref.ST_OUTC), ("cut_off", ref.ST_OUTC),
                        ("cut_len", ref.ST_OUTC), ("sample_piece", ref.ST_OUTS),
                        ("sample_off", ref.ST_OUTS)):
            sinks[name].add(bufs[name][: state[k]])
        state[[ref.ST_OUTP, ref.ST_OUTC, ref.ST_OUTS]] = 0
        if code == ref.DONE:
            break
        if progress is not None and time.time() - last > 10:
            last = time.time()
            progress(f"packing index: {state[ref.ST_POS] / need:.0%} of {need} tokens, "
                     f"{time.time() - t0:.0f}s")
    arrays = {n: s.array() for n, s in sinks.items()}
    shuffle = np.arange(num_samples, dtype=np.int32 if _fits32(num_samples) else np.int64)
    np.random.default_rng([seed, split_id, 3]).shuffle(shuffle)
    if out_dir:
        sink = _Sink(shuffle.dtype, path("shuffle"))
        sink.add(shuffle)
        shuffle = sink.array()
    L = ref.ST_LANG
    stats = {
        "format": FORMAT_VERSION, "rho": rho, "rho_effective": rho_eff,
        "switch_prob": [round(float(x), 6) for x in rswitch],
        "boundaries": int(state[ref.ST_BOUND]), "forced_switches": int(state[ref.ST_FORCED]),
        "free_boundaries": int(state[ref.ST_FREE]),
        "free_switches": int(state[ref.ST_FREESW]), "cuts": int(state[ref.ST_CUTS]),
        "band_cuts": int(state[ref.ST_BANDCUT]), "band_switches": int(state[ref.ST_BANDSW]),
        "boundary_switches": int(state[ref.ST_DOCSW]), "band_tokens": band,
        "pieces": int(state[ref.ST_PIECES]), "stream_tokens": int(state[ref.ST_POS]),
        "tokens": [int(state[L + 3 * l + 2]) for l in range(n_lang)], "epochs": n_epochs,
    }
    stats.update(realized_stats(arrays, lengths, id_first, stats["tokens"], num_samples * S,
                                names, probs))
    if affinity is not None:
        ast = affinity[-1]
        stats.update({"affinity_p": float(affinity_p), "affinity_tries": int(ast[ref.AF_TRY]),
                      "affinity_swaps": int(ast[ref.AF_HIT]),
                      **affinity_stats(arrays, lengths, id_first, affinity[2], S,
                                       num_samples * S)})
    check_realized(names, stats["shares"], list(probs), share_tolerance(num_samples),
                   num_samples, S)
    return PackedIndex(**arrays, shuffle=shuffle, stats=stats)


def realized_stats(arrays: dict, lengths: Sequence[np.ndarray], id_first: np.ndarray,
                   tokens: Sequence[int], total: int, names: Sequence[str],
                   probs: np.ndarray) -> dict:
    """What the index trains on, over its first `total` stream tokens (the samples' inputs):
    realized shares, and per language the cuts (pieces ending before their document does) and
    pieces per document occurrence. Chunked over the (memory-mapped) arrays."""
    n_lang = len(names)
    pl, pd = arrays["piece_lang"], arrays["piece_doc"]
    cp, co, cl = arrays["cut_piece"], arrays["cut_off"], arrays["cut_len"]
    n_pieces = int(pl.shape[0])
    pieces = np.zeros(n_lang, np.int64)
    for a in range(0, n_pieces, CHUNK):
        pieces += np.bincount(np.asarray(pl[a:a + CHUNK]), minlength=n_lang)[:n_lang]
    cuts, resumed = np.zeros(n_lang, np.int64), np.zeros(n_lang, np.int64)
    for a in range(0, int(cp.shape[0]), CHUNK):
        idx = np.asarray(cp[a:a + CHUNK], dtype=np.int64)
        la = np.asarray(pl)[idx].astype(np.int64) if idx.size else idx
        doc = np.asarray(pd)[idx].astype(np.int64) - id_first[la]
        full = np.zeros(idx.shape[0], np.int64)
        for l in range(n_lang):
            sel = la == l
            if sel.any():
                full[sel] = np.asarray(lengths[l])[doc[sel]]
        off = np.asarray(co[a:a + CHUNK], dtype=np.int64)
        short = off + np.asarray(cl[a:a + CHUNK], dtype=np.int64) < full
        cuts += np.bincount(la[short], minlength=n_lang)[:n_lang]
        resumed += np.bincount(la[off > 0], minlength=n_lang)[:n_lang]
    # the stream runs past `total` (the extra label token, the last piece): take it back
    inside = np.asarray(tokens, dtype=np.int64).copy()
    over = int(inside.sum()) - total
    p, j = n_pieces - 1, int(cp.shape[0]) - 1
    while over > 0 and p >= 0:
        la = int(pl[p])
        if j >= 0 and int(cp[j]) == p:
            n = int(cl[j])
            j -= 1
        else:
            n = int(lengths[la][int(pd[p]) - int(id_first[la])])
        take = min(n, over)
        inside[la] -= take
        over -= take
        p -= 1
    occ = pieces - resumed
    return {
        "languages": list(names), "probs": [round(float(x), 6) for x in probs],
        "shares": [round(float(x) / max(total, 1), 6) for x in inside],
        "cuts_per_language": [int(x) for x in cuts],
        "pieces_per_doc": [round(float(a) / b, 4) if b else 0.0 for a, b in zip(pieces, occ)],
    }


def affinity_tables(groups: Sequence[np.ndarray], lengths: Sequence[np.ndarray], p: float,
                    key: int) -> tuple:
    """The walk's affinity argument (packing_ref.pack): dense group ids over all languages
    (-1: no group), per language the CSR of each group's non-empty documents, the position
    tables and the state."""
    L = len(lengths)
    raw = [np.asarray(g, dtype=np.int64) for g in groups]
    for l in range(L):
        if raw[l].shape != lengths[l].shape:
            raise ValueError(f"groups[{l}] has {raw[l].shape[0]} entries for "
                             f"{lengths[l].shape[0]} documents")
    keys = np.unique(np.concatenate(raw)) if L else np.zeros(0, np.int64)
    keys = keys[keys != 0]
    dense, gptr, gdocs = [], [], []
    for l in range(L):
        d = np.searchsorted(keys, raw[l]).astype(np.int32)
        d[raw[l] == 0] = -1
        dense.append(d)
        live = np.flatnonzero((d >= 0) & (lengths[l] > 0)).astype(np.int32)
        order = live[np.argsort(d[live], kind="stable")]
        gptr.append(np.concatenate([[0], np.cumsum(np.bincount(d[order], minlength=len(keys)))]
                                   ).astype(np.int64))
        gdocs.append(np.ascontiguousarray(order, dtype=np.int32))
    inv = [np.full(lengths[l].shape[0], -1, dtype=np.int64) for l in range(L)]
    ast = np.zeros(ref.AF_EPOCH + L, dtype=np.int64)
    ast[ref.AF_EPOCH:] = -1
    return (float(p), int(key), dense, gptr, gdocs, inv, ast)


def affinity_stats(arrays: dict, lengths: Sequence[np.ndarray], id_first: np.ndarray,
                   dense: Sequence[np.ndarray], S: int, total: int) -> dict:
    """Measured on the index over its first ``total`` stream tokens: documents started (a piece
    at offset 0), those whose piece follows, inside one window, the whole of a document of the
    same group in another language (affinity pairs; the rate is pairs per document started),
    and the share of windows holding a pair."""
    pl, pd = arrays["piece_lang"], arrays["piece_doc"]
    cp, co, cl = (np.asarray(arrays[n], dtype=np.int64) for n in ("cut_piece", "cut_off",
                                                                   "cut_len"))
    n_pieces = int(pl.shape[0])
    started = pairs = 0
    pos = 0
    prev = None  # (lang, group, ends its document) of the last piece
    windows = np.zeros(-(-total // S), dtype=bool)  # windows holding a pair
    for a in range(0, n_pieces, CHUNK):
        la = np.asarray(pl[a:a + CHUNK], dtype=np.int64)
        doc = np.asarray(pd[a:a + CHUNK], dtype=np.int64) - id_first[la]
        full = np.zeros(la.shape[0], np.int64)
        grp = np.full(la.shape[0], -1, np.int64)
        for l in range(len(lengths)):
            sel = la == l
            if sel.any():
                full[sel] = np.asarray(lengths[l])[doc[sel]]
                grp[sel] = np.asarray(dense[l])[doc[sel]]
        n, off = full.copy(), np.zeros(la.shape[0], np.int64)
        j = np.searchsorted(cp, np.arange(a, a + la.shape[0]))
        hit = (j < cp.shape[0]) & (cp[np.minimum(j, max(cp.shape[0] - 1, 0))] ==
                                   np.arange(a, a + la.shape[0])) if cp.shape[0] else \
            np.zeros(la.shape[0], bool)
        n[hit], off[hit] = cl[j[hit]], co[j[hit]]
        start = pos + np.concatenate([[0], np.cumsum(n)[:-1]])
        end = start + n
        pos = int(end[-1]) if end.shape[0] else pos
        ends = off + n == full
        first = off == 0
        inside = start < total
        started += int((first & inside).sum())
        # pairs: piece i - 1 ends its document at a position inside a window, piece i starts
        # one of the same group in another language
        pl_prev = np.concatenate([[prev[0] if prev else -1], la[:-1]])
        pg_prev = np.concatenate([[prev[1] if prev else -1], grp[:-1]])
        pe_prev = np.concatenate([[prev[2] if prev else False], ends[:-1]])
        ok = (first & inside & pe_prev & (pl_prev != la) & (pl_prev >= 0) & (grp >= 0)
              & (pg_prev == grp) & (start % S != 0))
        pairs += int(ok.sum())
        windows[start[ok] // S] = True
        if la.shape[0]:
            prev = (int(la[-1]), int(grp[-1]), bool(ends[-1]))
    return {"affinity_pairs": pairs, "documents_started": started,
            "affinity_rate": round(pairs / max(started, 1), 6),
            "affinity_windows": round(float(windows.mean()) if windows.size else 0.0, 6)}


def summary_line(stats: dict, num_samples: int) -> str:
    """One line: realized shares next to P, switch rate next to rho (and its cap), forced and
    band switches, cuts and pieces per document per language."""
    names = stats.get("languages") or [f"#{i}" for i in range(len(stats.get("shares", [])))]
    shares = " ".join(f"{n} {s:.4f}/{p:.4f}" for n, s, p in
                      zip(names, stats.get("shares", []), stats.get("probs", [])))
    b = max(int(stats.get("boundaries", 0)), 1)
    cuts = " ".join(f"{n} {c}" for n, c in zip(names, stats.get("cuts_per_language", [])))
    ppd = " ".join(f"{n} {x:.3f}" for n, x in zip(names, stats.get("pieces_per_doc", [])))
    rho = stats.get("rho", 0.0)
    cap = stats.get("rho_effective", rho)
    capped = f" (capped at {cap:.3f})" if cap < rho * (1 - 1e-9) else ""
    return (f"{num_samples} windows; shares (realized/P) {shares}; switch rate "
            f"{stats.get('boundary_switches', 0) / b:.3f} vs rho {rho:g}{capped}, forced "
            f"{stats.get('forced_switches', 0) / b:.3f}, band {stats.get('band_switches', 0) / b:.3f}"
            f" of {b} boundaries; cuts {cuts} (band {stats.get('band_cuts', 0)}); pieces/doc "
            f"{ppd}" + (f"; affinity p {stats['affinity_p']:g}: {stats['affinity_pairs']} pairs, "
                        f"rate {stats['affinity_rate']:.3f} of documents, in "
                        f"{stats['affinity_windows']:.3f} of windows"
                        if "affinity_p" in stats else ""))
