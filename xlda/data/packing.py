"""The XLDA packing index: which token spans of which languages make up each sample.

Model (all numpy, no per-document Python loop):

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

The index is stored as flat span arrays (global start, language, document, offset) in stream
order plus, per sample, the first span it touches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

ARRAY_NAMES = ("span_start", "span_lang", "span_doc", "span_offset", "sample_first_span", "shuffle")


@dataclass
class PackedIndex:
    span_start: np.ndarray  # int64 [n_spans + 1]: global stream position; last = stream end
    span_lang: np.ndarray  # int16 [n_spans]: index into languages
    span_doc: np.ndarray  # int32/64 [n_spans]: document id in its language's indexed dataset
    span_offset: np.ndarray  # int32/64 [n_spans]: token offset of the span inside the document
    sample_first_span: np.ndarray  # int32/64 [n_samples]: span holding the sample's first token
    shuffle: np.ndarray  # int32/64 [n_samples]: dataset idx -> sample number

    def arrays(self) -> dict:
        return {name: getattr(self, name) for name in ARRAY_NAMES}

    def __len__(self) -> int:
        return int(self.shuffle.shape[0])

    def sample_spans(self, sample: int, seq_length: int, extra: int = 1) -> list[tuple]:
        """(lang, doc, offset, length) spans of sample number `sample` (unshuffled),
        covering its seq_length + extra tokens."""
        beg = sample * seq_length
        end = beg + seq_length + extra
        out = []
        i = int(self.sample_first_span[sample])
        while i < self.span_lang.shape[0] and int(self.span_start[i]) < end:
            s, e = int(self.span_start[i]), int(self.span_start[i + 1])
            lo, hi = max(s, beg), min(e, end)
            out.append(
                (int(self.span_lang[i]), int(self.span_doc[i]),
                 int(self.span_offset[i]) + lo - s, hi - lo)
            )
            i += 1
        return out


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
) -> PackedIndex:
    """Build the index. doc_lengths[l] / doc_ids[l]: lengths and dataset ids of language l's
    documents in this split. Callers validate (>= 2 languages with P > 0, no empty one)."""
    n_lang = len(probs)
    probs = np.asarray(probs, dtype=np.float64)
    lengths, doc_ids = list(doc_lengths), list(doc_ids)
    for l in range(n_lang):  # empty documents hold no token; dropping them simplifies spans
        lengths[l] = np.asarray(lengths[l], dtype=np.int64)
        doc_ids[l] = np.asarray(doc_ids[l], dtype=np.int64)
        if lengths[l].size and lengths[l].min() == 0:
            nz = lengths[l] > 0
            lengths[l], doc_ids[l] = lengths[l][nz], doc_ids[l][nz]
    tokens = np.array([int(x.sum()) for x in lengths], dtype=np.float64)
    mean_doc = np.array([t / max(1, len(x)) for t, x in zip(tokens, lengths)])
    mu = run_means(probs, mean_doc, rho, seq_length)
    active = np.nonzero(probs > 0)[0]
    pa = probs[active] / probs[active].sum()

    need = num_samples * seq_length + extra
    z = float(np.sum(pa * (1.0 - pa)))
    mean_run = float(np.sum(pa * (1.0 - pa) / z * mu[active]))
    # Phase 1: run languages and per-language cumulative targets, cut where the targets alone
    # already cover `need` (snapped run ends are >= their targets, so the real stream does too).
    margin = 1.05
    while True:
        n_runs = int(math.ceil(need / mean_run * margin)) + 64
        n_draw = int(math.ceil(n_runs / max(1.0 - float(np.sum(pa**2)), 1e-9) * 1.05)) + 64
        rng = np.random.default_rng([seed, split_id, 0])
        # inverse-CDF by comparisons: ~6x faster than Generator.choice(p=...) for few languages
        u = rng.random(n_draw, dtype=np.float32)
        pick = np.zeros(n_draw, dtype=np.int16)
        for c in np.cumsum(pa)[:-1].astype(np.float32):
            pick += u >= c
        draws = active.astype(np.int16)[pick]
        keep = np.empty(n_draw, dtype=bool)
        keep[0] = True
        np.not_equal(draws[1:], draws[:-1], out=keep[1:])
        chain = draws[keep]
        wheres, targets = [], []
        inc = np.empty(chain.shape[0], dtype=np.int64)
        for l in range(n_lang):
            where = np.nonzero(chain == l)[0]
            k = where.size
            if mu[l] <= 1.0:
                t = np.arange(0, k + 2, dtype=np.int64)
            else:
                rx = np.random.default_rng([seed, split_id, 1, l])
                t = np.empty(k + 2, dtype=np.int64)
                t[0] = 0
                t[1:] = np.cumsum(rx.uniform(1.0, 2.0 * mu[l] - 1.0, size=k + 1))  # floor
            inc[where] = np.diff(t[:-1])
            wheres.append(where)
            targets.append(t)
        approx_end = np.cumsum(inc)
        if approx_end[-1] >= need:
            break
        margin *= 2.0
    n_runs = int(np.searchsorted(approx_end, need, side="left")) + 1
    chain = chain[:n_runs]

    # Phase 2: per language, its epochs of shuffled documents and the snapped run ends.
    run_a = np.empty(n_runs, dtype=np.int64)  # run start in its language's stream
    run_len = np.empty(n_runs, dtype=np.int64)
    run_d0 = np.empty(n_runs, dtype=np.int64)  # stream doc holding the run's first token
    run_d1 = np.empty(n_runs, dtype=np.int64)  # ... and its last token
    starts_all, ids_all = [], []
    base = 0
    for l in range(n_lang):
        where = wheres[l][: np.searchsorted(wheres[l], n_runs)]
        k = where.size
        if k == 0:
            continue
        t = targets[l][1 : k + 2]  # T_1 .. T_{k+1}
        n_docs = lengths[l].shape[0]
        epochs = int(math.ceil(t[-1] / tokens[l]))
        rs = np.random.default_rng([seed, split_id, 2, l])
        order = rs.permutation(n_docs) if epochs == 1 else np.concatenate(
            [rs.permutation(n_docs) for _ in range(epochs)])
        lens = lengths[l][order]
        ends = np.cumsum(lens)
        idx = np.searchsorted(ends, t[:-1], side="left")  # first doc ending at/after T_k
        nb = ends[idx]
        snap = nb < t[1:]  # a document boundary in [T_k, T_{k+1}): end the run there
        e = np.where(snap, nb, t[:-1])
        a = np.empty_like(e)
        a[0] = 0
        a[1:] = e[:-1]
        d0 = np.empty_like(idx)
        d0[0] = 0
        d0[1:] = idx[:-1] + snap[:-1]  # empty docs were dropped, so the next doc starts at a
        run_a[where] = a
        run_len[where] = e - a
        run_d0[where] = d0 + base
        run_d1[where] = idx + base
        starts_all.append(ends - lens)
        ids_all.append(doc_ids[l][order])
        base += n_docs * epochs
    run_g = np.cumsum(run_len) - run_len  # global start of each run
    stream_end = int(run_g[-1] + run_len[-1])
    all_starts = np.concatenate(starts_all)
    all_ids = np.concatenate(ids_all)

    counts = run_d1 - run_d0 + 1
    run_of = np.repeat(np.arange(n_runs, dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    doc_pos = np.arange(run_of.shape[0], dtype=np.int64)
    doc_pos += (run_d0 - first)[run_of]
    doc_start = all_starts[doc_pos]
    ra = run_a[run_of]
    piece_start = np.maximum(doc_start, ra)  # in the language stream
    span_start = np.empty(run_of.shape[0] + 1, dtype=np.int64)
    np.add((run_g - run_a)[run_of], piece_start, out=span_start[:-1])
    span_start[-1] = stream_end
    span_lang = chain[run_of]
    span_doc = all_ids[doc_pos]
    span_offset = piece_start - doc_start

    sample_first = np.searchsorted(
        span_start[:-1], np.arange(num_samples, dtype=np.int64) * seq_length, side="right") - 1
    shuffle = np.random.default_rng([seed, split_id, 3]).permutation(num_samples)
    return PackedIndex(span_start, span_lang.astype(np.int16), _small(span_doc),
                       _small(span_offset), _small(sample_first), _small(shuffle))


def _small(a: np.ndarray) -> np.ndarray:
    """int32 when it fits (as Megatron's indices): halves the cache files and their writes."""
    if a.size == 0 or (a.max() < 2**31 - 1 and a.min() >= -(2**31)):
        return a.astype(np.int32)
    return a.astype(np.int64)

