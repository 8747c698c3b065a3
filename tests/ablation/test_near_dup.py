"""MinHash near duplicates and containment on hand-built texts with known overlaps."""
import numpy as np
import pytest

from xlda.ablation.near_dup import containment, near_duplicate_pairs, shingle_hashes, signature

A = ("Choose Tools - Macros - Organize Dialogs, and then click New. Enter a name for the dialog "
     "and click OK. To rename the dialog later, right-click the name on the tab.")


def test_shingles_ignore_whitespace_runs_and_are_deterministic():
    assert np.array_equal(shingle_hashes("ab  cd\n e"), shingle_hashes("ab cd e"))
    assert shingle_hashes("abcdef", 5).size == 2 and shingle_hashes("abc", 5).size == 1
    assert shingle_hashes("", 5).size == 0
    assert np.array_equal(signature(shingle_hashes(A)), signature(shingle_hashes(A)))


def test_minhash_estimates_jaccard():
    """Two sets of 400 distinct shingles sharing 300: Jaccard 300 / 500 = 0.6; 64 hashes
    estimate it within a few standard errors (sqrt(0.24 / 64) = 0.06)."""
    rng = np.random.default_rng(0)
    u = np.unique(rng.integers(0, 2**62, size=1000, dtype=np.uint64))[:500]
    a, b = u[:400], u[100:]
    est = float((signature(a) == signature(b)).mean())
    assert abs(est - 0.6) < 0.2
    assert float((signature(a) == signature(a)).mean()) == 1.0


def test_near_copies_are_paired_unrelated_texts_are_not():
    near = A.replace("click New", "click  New.")  # whitespace and one character
    other = "A completely different page about spreadsheets, charts and pivot tables in Calc."
    pairs = near_duplicate_pairs([A], [other, near, A])
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (0, 2)]
    assert pairs[1][2] == 1.0
    with pytest.raises(ValueError, match="bands"):
        near_duplicate_pairs([A], [A], bands=5)


def test_containment_is_the_share_of_held_out_shingles_found_in_training():
    held = "x" * 5 + A  # 25-grams: the ones inside A are found, the 5 that start in x-run not
    c = containment([held, A, "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"], [A + " and more"])
    n = shingle_hashes(held, 25).size
    assert c[0] == pytest.approx((n - 5) / n) and c[1] == 1.0 and c[2] == 0.0
    assert containment([A], []).tolist() == [0.0]
