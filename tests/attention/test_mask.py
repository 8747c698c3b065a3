import pytest
import torch

from tests.attention.layouts import from_lengths, named, NAMED
from xlda.attention.mask import dense_mask

# doc=[0,0,1,1,2], lang=[0,0,1,1,0]
DOC = torch.tensor([[0, 0, 1, 1, 2]])
LANG = torch.tensor([[0, 0, 1, 1, 0]])


def test_xlda_exact():
    expected = torch.tensor([
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],  # doc1 (lang1) sees doc0 (lang0)
        [1, 1, 1, 1, 0],
        [0, 0, 1, 1, 1],  # doc2 (lang0) sees doc1 (lang1) but not doc0 (same lang)
    ], dtype=torch.bool)
    assert torch.equal(dense_mask(DOC, LANG, "xlda")[0], expected)


def test_document_exact():
    expected = torch.tensor([
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 0, 1],
    ], dtype=torch.bool)
    assert torch.equal(dense_mask(DOC, LANG, "document")[0], expected)


def test_causal_exact():
    assert torch.equal(dense_mask(DOC, LANG, "causal")[0], torch.tril(torch.ones(5, 5, dtype=torch.bool)))


@pytest.mark.parametrize("name", list(NAMED))
def test_mode_relations(name):
    doc, lang = named(name)
    x, d, c = (dense_mask(doc, lang, m) for m in ("xlda", "document", "causal"))
    assert bool((d <= x).all()) and bool((x <= c).all())  # document ⊆ xlda ⊆ causal
    assert bool(torch.diagonal(x, dim1=1, dim2=2).all())  # every token sees itself


def test_one_language_is_document_and_single_doc_is_causal():
    doc, lang = named("one_language")
    assert torch.equal(dense_mask(doc, lang, "xlda"), dense_mask(doc, lang, "document"))
    doc, lang = named("single_doc")
    assert torch.equal(dense_mask(doc, lang, "xlda"), dense_mask(doc, lang, "causal"))


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown attention mask mode"):
        dense_mask(DOC, LANG, "sliding")
    with pytest.raises(ValueError, match="same shape"):
        dense_mask(DOC, LANG[:, :4], "xlda")
