"""Packing conversations: exact layout of a hand-built sample, and invariants (hypothesis)."""
import numpy as np
from hypothesis import given, settings, strategies as st

from xlda.posttrain.sft_data import Conversation, build_sample, pack


def _conv(ids, mask):
    return Conversation(np.asarray(ids, np.int64), np.asarray(mask, np.int8))


def test_sample_layout_exact():
    a = _conv([10, 11, 12], [0, 1, 1])
    b = _conv([20, 21], [0, 1])
    s = build_sample([a, b], 7, pad_id=0)
    assert s["tokens"].tolist() == [10, 11, 12, 20, 21, 0, 0]
    assert s["labels"].tolist() == [11, 12, 0, 21, 0, 0, 0]
    # label of a conversation's last token would be the next one's first: no loss there
    assert s["loss_mask"].tolist() == [1, 1, 0, 1, 0, 0, 0]
    assert s["doc_ids"].tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert s["position_ids"].tolist() == list(range(7))
    assert s["lang_ids"].tolist() == [0] * 7
    r = build_sample([a, b], 7, pad_id=0, reset_positions=True)  # learned positions only
    assert r["position_ids"].tolist() == [0, 1, 2, 0, 1, 5, 6]


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 64).flatmap(
    lambda S: st.tuples(st.just(S), st.lists(st.integers(1, S), min_size=1, max_size=40))))
def test_pack_keeps_order_fits_and_is_next_fit(case):
    S, lengths = case
    bins = pack(lengths, S)
    assert [i for b in bins for i in b] == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= S for b in bins)
    for b, nxt in zip(bins, bins[1:]):  # a bin closes only when the next one does not fit
        assert sum(lengths[i] for i in b) + lengths[nxt[0]] > S
