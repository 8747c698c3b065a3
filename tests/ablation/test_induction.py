"""The repeated-sequence test: layout of the sequences, which positions are scored, and the gain
of a model that copies (exact on a hand-built stand-in)."""
import numpy as np
import pytest
import torch

from xlda.ablation.induction import (induction_batches, induction_losses, random_sequences,
                                     text_sequences)

EOD = 0


def test_repeat_and_control_score_the_same_tokens_at_the_same_positions():
    seqs = np.array([[5, 6, 7, 8], [9, 10, 11, 12]])
    b = induction_batches(seqs, EOD, 10)
    (rep,), (ctl,) = b["repeat"], b["control"]
    assert rep["tokens"][0].tolist() == [5, 6, 7, 8, 5, 6, 7, 8, EOD, EOD]
    assert ctl["tokens"][0].tolist() == [9, 10, 11, 12, 5, 6, 7, 8, EOD, EOD]  # y: the next row
    assert ctl["tokens"][1].tolist() == [5, 6, 7, 8, 9, 10, 11, 12, EOD, EOD]  # cyclically
    for x in (rep, ctl):
        assert x["loss_mask"][0].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0]
        assert x["labels"][0][x["loss_mask"][0] > 0].tolist() == [6, 7, 8]
        assert x["doc_ids"][0].tolist() == [0] * 8 + [1, 1]  # one document
    with pytest.raises(ValueError, match="exceed"):
        induction_batches(seqs, EOD, 7)
    with pytest.raises(ValueError, match="at least 2"):
        induction_batches(seqs[:1], EOD, 10)


def test_sequences_from_held_out_text():
    docs = [np.array([1, 2, 3, EOD]), np.array([4, 5, 6, 7, 8, EOD])]
    assert text_sequences(docs, EOD, length=4).tolist() == [[4, 5, 6, 7]]  # only one is long enough
    r = random_sequences(docs, EOD, length=5, n_seqs=3)
    assert r.shape == (3, 5) and EOD not in r and set(r.ravel()) <= set(range(1, 9))
    assert np.array_equal(r, random_sequences(docs, EOD, length=5, n_seqs=3))  # fixed seed
    with pytest.raises(ValueError, match="no document"):
        text_sequences(docs, EOD, length=9)


class _Copier(torch.nn.Module):
    """Loss 5 where the label already occurred in the query's document up to it, else 7."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens, position_ids, mask, labels=None, loss_mask=None):
        out = torch.full(tokens.shape, 7.0)
        for r in range(tokens.shape[0]):
            for q in range(tokens.shape[1]):
                seen = tokens[r, :q + 1][mask.doc_ids[r, :q + 1] == mask.doc_ids[r, q]]
                if (seen == labels[r, q]).any():
                    out[r, q] = 5.0
        return out


def test_a_copying_model_gains_exactly_what_copying_gives():
    seqs = np.array([[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]])  # no token twice within a row
    got = induction_losses(_Copier(), induction_batches(seqs, EOD, 12), "xlda")
    assert got == {"control": 7.0, "repeat": 5.0, "gain": 2.0}
