"""The XLDA packing index: which token spans of which languages make up each sample.

Model (numpy, no per-document Python loop; the sequential steps also exist as optional compiled
loops in _packing_kernel.c, used when built, bit-identical):

1. Run languages. A chain of "runs" (maximal same-language spans of the global token stream):
   draw languages i.i.d. from P and drop consecutive repeats, so each next run's language is
   drawn from P restricted to the other languages (the switch rule), and adjacent runs always
   differ in language.
2. Run lengths. Language l's token stream is the concatenation of its documents, one seeded
   shuffle per epoch (epochs repeat whole for upsampled languages). Its k-th run ends near the
   cumulative target T_k = floor(x_1 + ... + x_k), x ~ U(1, 2*mu_l - 1): at the first document
   boundary in [T_k, T_{k+1}) if there is one (so runs are whole documents whenever possible and
   hold ~1/rho documents on average), else mid-document at T_k (the document continues in l's
   next run). Since targets do not drift, language l consumes mu_l tokens per run on average;
   mu_l ~ 1/(1 - P_l) compensates the dedup chain's visit rate ~ P_l (1 - P_l), so token shares
   converge to P(l).
3. Guarantee. x <= 2*mu_l - 1 with mu_l <= (S + 1) / 4 bounds every run to <= S - 1 tokens.
   A window of S input tokens therefore always contains a run boundary, and adjacent runs have
   different languages: every sample holds >= 2 languages, by construction, for any alignment.
   The cost: when mean_doc / rho exceeds ~S/4 tokens the run means are scaled down (ratios kept,
   so shares still converge to P) and languages switch more often than rho alone would give.
4. Samples are consecutive windows of S (+1 extra label token, as Megatron) of the global
   stream; sample order is shuffled with a seeded permutation (as Megatron's shuffle index).

The index stores runs (global start, language, start in the document stream) and, per
language, its shuffled documents (cumulative ends, ids): O(runs + docs), like Megatron's
document/sample indices. A sample's (lang, doc, offset, length) spans are resolved when it is
read, by binary search, so the build never materialises per-document pieces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

ARRAY_NAMES = ("run_start", "run_lang", "run_pos", "doc_end", "doc_id", "shuffle")


@dataclass
class PackedIndex:
    """Runs plus the documents they read; a sample's (lang, doc, offset, length) spans are
    resolved when it is read (two binary searches per run), so the build never splits runs."""

    # positions are int32 when the whole document stream fits, else int64
    run_start: np.ndarray  # [n_runs + 1]: global stream position; last = stream end
    run_lang: np.ndarray  # int16 [n_runs]: index into languages
    run_pos: np.ndarray  # [n_runs]: start of the run in the document stream (doc_end)
    doc_end: np.ndarray  # [n_stream_docs]: cumulative end of each stream document:
    #   every language's shuffled epochs one after the other (its runs never leave its block)
    doc_id: np.ndarray  # int32/64 [n_stream_docs]: document id in its language's dataset
    shuffle: np.ndarray  # int32/64 [n_samples]: dataset idx -> sample number
    _spans: Optional[dict] = field(default=None, init=False, repr=False, compare=False)
    _plain: Optional[tuple] = field(default=None, init=False, repr=False, compare=False)

    def arrays(self) -> dict:
        return {name: getattr(self, name) for name in ARRAY_NAMES}

    def __len__(self) -> int:
        return int(self.shuffle.shape[0])

    def sample_spans(self, sample: int, seq_length: int, extra: int = 1) -> list[tuple]:
        """(lang, doc, offset, length) spans of sample number `sample` (unshuffled),
        covering its seq_length + extra tokens."""
        beg = sample * seq_length
        end = beg + seq_length + extra
        rs, de, pos, lang, doc_id = self._views()
        # keys in the arrays' dtype: an int64 key would make numpy cast the whole int32 array;
        # small slices -> lists: scalar reads of a memmap cost ~1 us each
        r0 = int(np.searchsorted(rs, rs.dtype.type(beg), side="right")) - 1
        r1 = min(int(np.searchsorted(rs, rs.dtype.type(end), side="left")), lang.shape[0])
        g = rs[r0: r1 + 1].tolist()
        pos, lang = pos[r0:r1].tolist(), lang[r0:r1].tolist()
        out = []
        for i in range(r1 - r0):
            lo, hi = max(g[i], beg), min(g[i + 1], end)
            p0 = pos[i] + lo - g[i]
            p1 = p0 + hi - lo
            d0, d1 = np.searchsorted(de, de.dtype.type([p0, p1 - 1]), side="right").tolist()
            ends = de[max(d0 - 1, 0): d1 + 1].tolist()  # the run's documents (and the one before)
            if d0 == 0:
                ends.insert(0, 0)
            ids = doc_id[d0: d1 + 1].tolist()
            for j, d in enumerate(ids):
                ds, q = ends[j], min(p1, ends[j + 1])
                out.append((lang[i], d, p0 - ds, q - p0))
                p0 = q
        return out

    def _views(self) -> tuple:
        """Plain ndarray views of the (memmapped) arrays: slicing a memmap costs ~10x more."""
        if self._plain is None:
            self._plain = tuple(np.asarray(getattr(self, n)) for n in
                                ("run_start", "doc_end", "run_pos", "run_lang", "doc_id"))
        return self._plain

    def spans(self) -> dict:
        """The whole stream as flat span arrays in stream order (analysis and tests; the
        dataset never needs them): span_start [n_spans + 1], span_lang, span_doc,
        span_offset."""
        if self._spans is None:
            rs = np.asarray(self.run_start, dtype=np.int64)
            p0 = np.asarray(self.run_pos, dtype=np.int64)
            de = np.asarray(self.doc_end, dtype=np.int64)
            p1 = p0 + np.diff(rs)
            d0 = np.searchsorted(de, p0, side="right")
            counts = np.searchsorted(de, p1 - 1, side="right") - d0 + 1
            run_of = np.repeat(np.arange(p0.shape[0]), counts)
            d = np.arange(run_of.shape[0]) - (np.cumsum(counts) - counts - d0)[run_of]
            doc_start = np.concatenate([[0], de])[d]
            piece = np.maximum(doc_start, p0[run_of])
            start = np.append(rs[:-1][run_of] + piece - p0[run_of], rs[-1])
            self._spans = {"span_start": start,
                           "span_lang": np.asarray(self.run_lang)[run_of],
                           "span_doc": np.asarray(self.doc_id)[d],
                           "span_offset": piece - doc_start}
        return self._spans

    # flat span views (materialised on first use), as earlier index versions stored them
    span_start = property(lambda self: self.spans()["span_start"])
    span_lang = property(lambda self: self.spans()["span_lang"])
    span_doc = property(lambda self: self.spans()["span_doc"])
    span_offset = property(lambda self: self.spans()["span_offset"])


def default_num_samples(tokens: Sequence[int], probs: Sequence[float], seq_length: int,
                        extra: int = 1) -> int:
    """Megatron's num_samples=None means one epoch: here, one epoch of the limiting language."""
    budget = min(n / p for n, p in zip(tokens, probs) if p > 0)
    return max(1, int((budget - extra) // seq_length))


def run_means(probs: np.ndarray, mean_doc: np.ndarray, rho: float, seq_length: int) -> np.ndarray:
    """Mean run length (tokens) per language; see the module docstring."""
    active = probs > 0
    p = probs[active]
    base = float(np.sum(p * mean_doc[active])) / rho
    z = float(np.sum(p * (1.0 - p)))
    mu = np.zeros_like(probs)
    mu[active] = base * z / (1.0 - p)
    hi = (seq_length + 1) / 4.0
    if mu.max() > hi:  # runs must stay <= S - 1 tokens; shrink all (keeps the share ratios)
        mu *= hi / mu.max()
    mu[active] = np.maximum(mu[active], 1.0)
    return mu


def build_packed_index(
    doc_lengths: Sequence[np.ndarray],
    doc_ids: Sequence[np.ndarray],
    probs: Sequence[float],
    rho: float,
    seq_length: int,
    num_samples: int,
    seed: int,
    split_id: int = 0,
    extra: int = 1,
    backend: Optional[str] = None,
) -> PackedIndex:
    """Build the index. doc_lengths[l] / doc_ids[l]: lengths and dataset ids (an array, or a
    range) of language l's documents in this split. Callers validate (>= 2 languages with
    P > 0, no empty one). backend: "numpy", "c" (the compiled loops; error if not built) or
    None (c if built); both give bit-identical indexes."""
    n_lang = len(probs)
    probs = np.asarray(probs, dtype=np.float64)
    lengths, doc_ids = list(doc_lengths), list(doc_ids)
    for l in range(n_lang):  # empty documents hold no token; dropping them simplifies spans
        lengths[l] = np.asarray(lengths[l], dtype=np.int64)
        if not (isinstance(doc_ids[l], range) and doc_ids[l].step == 1):
            doc_ids[l] = _id_array(doc_ids[l])
        if lengths[l].size and lengths[l].min() == 0:
            nz = lengths[l] > 0
            lengths[l] = lengths[l][nz]
            doc_ids[l] = _id_array(doc_ids[l])[nz]
    tokens = np.array([int(x.sum()) for x in lengths], dtype=np.float64)
    mean_doc = np.array([t / max(1, len(x)) for t, x in zip(tokens, lengths)])
    mu = run_means(probs, mean_doc, rho, seq_length)
    active = np.nonzero(probs > 0)[0]
    pa = probs[active] / probs[active].sum()

    need = num_samples * seq_length + extra
    z = float(np.sum(pa * (1.0 - pa)))
    mean_run = float(np.sum(pa * (1.0 - pa) / z * mu[active]))
    kern = _kernel(backend)
    # Phase 1: run languages and per-language cumulative targets, cut where the targets alone
    # already cover `need` (snapped run ends are >= their targets, so the real stream does too).
    margin = 1.05
    while True:
        n_runs = int(math.ceil(need / mean_run * margin)) + 64
        n_draw = int(math.ceil(n_runs / max(1.0 - float(np.sum(pa**2)), 1e-9) * 1.05)) + 64
        rng = np.random.default_rng([seed, split_id, 0])
        # inverse-CDF by comparisons: ~6x faster than Generator.choice(p=...) for few languages
        u = rng.random(n_draw, dtype=np.float32)
        cuts = np.cumsum(pa)[:-1].astype(np.float32)
        if kern is not None:
            chain, counts = np.empty(n_draw, dtype=np.int16), np.empty(n_lang, dtype=np.int64)
            chain = chain[: kern.chain(u, cuts, active.astype(np.int16), chain, counts)]
        else:
            pick = np.zeros(n_draw, dtype=np.int16)
            for c in cuts:
                pick += u >= c
            draws = active.astype(np.int16)[pick]
            keep = np.empty(n_draw, dtype=bool)
            keep[0] = True
            np.not_equal(draws[1:], draws[:-1], out=keep[1:])
            chain = draws[keep]
            counts = np.bincount(chain, minlength=n_lang)
        xs = []  # run-length draws x ~ U(1, 2 mu - 1); x = 1 (targets 0, 1, 2, ...) if mu <= 1
        for l in range(n_lang):
            if mu[l] <= 1.0:
                xs.append(np.ones(counts[l] + 1))
            else:
                rx = np.random.default_rng([seed, split_id, 1, l])
                xs.append(rx.uniform(1.0, 2.0 * mu[l] - 1.0, size=counts[l] + 1))
        xoff = np.zeros(n_lang + 1, dtype=np.int64)
        np.cumsum(counts + 1, out=xoff[1:])
        toff = xoff[:-1] + np.arange(n_lang)  # language l's targets: t[toff[l]:][:k_l + 2]
        t_all = np.empty(int(xoff[-1]) + n_lang, dtype=np.int64)
        if kern is not None:
            kern.targets(xs, t_all)
            n_runs = kern.cut(chain, t_all, toff, need, counts)  # counts: now of the runs kept
            if n_runs > 0:
                break
        else:
            inc = np.empty(chain.shape[0], dtype=np.int64)
            for l in range(n_lang):
                t = t_all[toff[l]: toff[l] + counts[l] + 2]
                t[0] = 0
                t[1:] = np.cumsum(xs[l])  # float -> int64 truncates: floor
                inc[chain == l] = np.diff(t[:-1])
            approx_end = np.cumsum(inc)
            if approx_end[-1] >= need:
                n_runs = int(np.searchsorted(approx_end, need, side="left")) + 1
                counts = np.bincount(chain[:n_runs], minlength=n_lang)
                break
        margin *= 2.0
    chain = chain[:n_runs]

    # Phase 2: per language, its epochs of shuffled documents and the snapped run ends.
    # Written in place into one doc_end / doc_id / run-end array (language blocks in order).
    used = [l for l in range(n_lang) if counts[l]]
    epochs = {l: int(math.ceil(t_all[toff[l] + counts[l] + 1] / tokens[l])) for l in used}
    doff = np.cumsum([0] + [lengths[l].shape[0] * epochs[l] for l in used])
    # int32 positions when the whole stream fits (as Megatron's sample index): half the writes
    pos_t = np.int32 if sum(tokens[l] * epochs[l] for l in used) < 2**31 - 1 else np.int64
    doc_end = np.empty(int(doff[-1]), dtype=pos_t)
    id_range = [(x.start, x[-1]) if isinstance(x, range) else (x.min(), x.max())
                for x in (doc_ids[l] for l in used)]
    id_fits = all(lo >= -(2**31) and hi < 2**31 - 1 for lo, hi in id_range)  # as _small
    doc_id = np.empty(int(doff[-1]), dtype=np.int32 if id_fits else np.int64)
    eoff = np.zeros(n_lang, dtype=np.int64)  # language l's run ends: e[eoff[l]:][:k_l]
    np.cumsum(counts[:-1], out=eoff[1:])
    e = np.empty(n_runs, dtype=np.int64)
    starts = np.zeros(n_lang, dtype=np.int64)
    base = 0  # tokens of the previous languages' streams: doc_end is one global cumsum
    for i, l in enumerate(used):
        k = int(counts[l])
        t = t_all[toff[l] + 1: toff[l] + k + 2]  # T_1 .. T_{k+1}
        n_docs = lengths[l].shape[0]
        rs = np.random.default_rng([seed, split_id, 2, l])
        order = rs.permutation(n_docs) if epochs[l] == 1 else np.concatenate(
            [rs.permutation(n_docs) for _ in range(epochs[l])])
        ends, ids, el = doc_end[doff[i]: doff[i + 1]], doc_id[doff[i]: doff[i + 1]], \
            e[eoff[l]: eoff[l] + k]
        if kern is not None:
            dl = doc_ids[l]  # a range: ids are first + order, no gather
            rng_ids = isinstance(dl, range)
            kern.snap(t, lengths[l], None if rng_ids else dl, dl.start if rng_ids else 0, order,
                      base, ends, ids, el)
        else:
            cum = np.cumsum(lengths[l][order])
            idx = np.searchsorted(cum, t[:-1], side="left")  # first doc ending at/after T_k
            nb = cum[idx]
            el[:] = np.where(nb < t[1:], nb, t[:-1])  # a doc boundary in [T_k, T_{k+1}): end
            el += base
            cum += base
            ends[:] = cum
            dl = doc_ids[l]
            ids[:] = order + dl.start if isinstance(dl, range) else dl[order]
        starts[l] = base
        base = int(ends[-1])
    run_pos = np.empty(n_runs, dtype=pos_t)  # run start in the concatenated doc stream
    run_start = np.empty(n_runs + 1, dtype=pos_t)  # global stream position
    if kern is not None:
        kern.assemble(chain, e, eoff, starts, run_start, run_pos)
    else:
        run_len = np.empty(n_runs, dtype=np.int64)
        for l in used:
            el = e[eoff[l]: eoff[l] + counts[l]]
            where = chain == l
            a = np.empty_like(el)
            a[0] = starts[l]
            a[1:] = el[:-1]
            run_pos[where] = a
            run_len[where] = el - a
        run_start[0] = 0
        np.cumsum(run_len, out=run_start[1:])
    shuffle = np.random.default_rng([seed, split_id, 3]).permutation(num_samples)
    return PackedIndex(run_start, chain, run_pos, doc_end, doc_id, _small(shuffle))


def _id_array(ids) -> np.ndarray:
    if isinstance(ids, range):  # np.asarray(range) would iterate Python ints
        return np.arange(ids.start, ids.stop, ids.step, dtype=np.int64)
    return np.asarray(ids, dtype=np.int64)


def _kernel(backend: Optional[str]):
    if backend == "numpy":
        return None
    if backend not in (None, "c"):
        raise ValueError(f"backend={backend!r}: use 'numpy', 'c' or None")
    try:
        from xlda.data import _packing_kernel
    except ImportError:
        if backend == "c":
            raise ImportError("xlda.data._packing_kernel is not built: run `pip install -e .` "
                              "(needs a C compiler), or use backend='numpy'") from None
        return None
    return _packing_kernel


def _small(a: np.ndarray) -> np.ndarray:
    """int32 when it fits (as Megatron's indices): halves the cache files and their writes."""
    if a.size == 0 or (a.max() < 2**31 - 1 and a.min() >= -(2**31)):
        return a.astype(np.int32)
    return a.astype(np.int64)

