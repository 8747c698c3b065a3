"""Hand-built and random doc/lang layouts shared by the attention tests."""
from __future__ import annotations

import torch


def from_lengths(doc_lens, langs):
    """One row: documents of the given lengths and languages -> (doc_ids [S], lang_ids [S])."""
    doc = torch.cat([torch.full((n,), i, dtype=torch.int32) for i, n in enumerate(doc_lens)])
    lang = torch.cat([torch.full((n,), l, dtype=torch.int32) for n, l in zip(doc_lens, langs)])
    return doc, lang


def batch(*rows):
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


def random_row(S: int, gen: torch.Generator, max_doc: int = 12, num_langs: int = 3):
    lens, langs, total = [], [], 0
    while total < S:
        n = min(int(torch.randint(1, max_doc + 1, (1,), generator=gen)), S - total)
        lens.append(n)
        langs.append(int(torch.randint(0, num_langs, (1,), generator=gen)))
        total += n
    return from_lengths(lens, langs)


S16 = 16
NAMED = {
    # two languages alternating, the typical XLDA sample
    "mixed": [([3, 2, 3, 4, 1, 3], [0, 1, 0, 1, 2, 0])],
    # only one language in the window: xlda == document
    "one_language": [([5, 6, 5], [1, 1, 1])],
    # one document spanning the whole sequence: xlda == document == causal
    "single_doc": [([16], [0])],
    # many length-1 documents
    "tiny_docs": [([1] * 16, [i % 2 for i in range(16)])],
    # the first document is the tail of one split across sequences (just a doc at the start)
    "split_head": [([7, 9], [0, 1])],
    # B > 1, a different layout per row
    "batch3": [([3, 2, 3, 4, 1, 3], [0, 1, 0, 1, 2, 0]), ([16], [2]), ([1] * 8 + [8], [0, 1] * 4 + [1])],
}


def named(name):
    return batch(*[from_lengths(l, g) for l, g in NAMED[name]])
