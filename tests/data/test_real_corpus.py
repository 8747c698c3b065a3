"""Round trip on ../shared/corpus: real en/ko/ja/zh text -> per-language indexed datasets ->
XLDADataset; invariants hold and every span detokenizes back to its document's text."""
import numpy as np
import pytest
import torch

from tests.data.fixtures import CORPUS_LANGS, corpus_docs, train_test_tokenizer
from tests.data.test_dataset import write_indexed
from xlda.data import XLDADatasetConfig, build_xlda_datasets
from xlda.data.packing_stats import stream_layout
from xlda.data.tokenizer import build_tokenizer

DOCS_PER_LANG = 120
S = 512


@pytest.fixture(scope="module")
def real(corpus, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    tok = build_tokenizer("HuggingFaceTokenizer", train_test_tokenizer(tmp, corpus_dir=corpus, docs_per_lang=30))
    texts, ids, prefixes = {}, {}, {}
    for lang in CORPUS_LANGS:
        texts[lang] = [d["text"] for d in corpus_docs(corpus, lang, DOCS_PER_LANG)]
        ids[lang] = [tok.tokenize(t) + [tok.eod] for t in texts[lang]]
        prefixes[lang] = [write_indexed(tmp / f"lo_{lang}_text_document", ids[lang],
                                        dtype=np.uint16)]
    cfg = XLDADatasetConfig(random_seed=11, sequence_length=S, split="90,10,0", tokenizer=tok,
                            lang_prefixes=prefixes, xlda_alpha=0.5,
                            xlda_beta={"en": 1, "ko": 1, "ja": 1, "zh": 1}, xlda_rho=0.5)
    train, valid, test = build_xlda_datasets(cfg)
    return tok, texts, ids, train, valid, test


def test_invariants_on_real_text(real):
    tok, texts, ids, train, valid, test = real
    assert test is None and len(train) > 50 and len(valid) > 3
    assert train.languages == CORPUS_LANGS
    for ds in (train, valid):
        for i in range(len(ds)):
            g = ds[i]
            assert len(set(g["lang_ids"].tolist())) >= 2
            spans = ds.sample_spans(i)
            # tokens are exactly the spans' slices of the original tokenization
            want = np.concatenate([ids[CORPUS_LANGS[la]][d][off:off + n]
                                   for la, d, off, n, _ in spans])
            assert torch.equal(g["tokens"], torch.from_numpy(want[:S]).long())
            assert torch.equal(g["labels"], torch.from_numpy(want[1:S + 1]).long())


def test_spans_detokenize_to_document_text(real):
    """Joining a document's pieces in stream order gives back its tokens; whole documents
    detokenize to exactly the source text (a byte-level BPE is lossless)."""
    tok, texts, ids, train, _, _ = real
    lay = stream_layout(train.index, [train.dataset.lengths(l) for l in range(4)])
    pieces = {}
    n_whole = 0
    for s in range(lay["lang"].shape[0]):
        if lay["start"][s] >= len(train) * S + 1:
            break
        la, d = int(lay["lang"][s]), int(lay["doc"][s])
        off, n = int(lay["offset"][s]), int(lay["length"][s])
        lang = CORPUS_LANGS[la]
        if off == 0:
            pieces[(la, d)] = []
        pieces[(la, d)].append(train.dataset.get(la, d, off, n))
        got = np.concatenate(pieces[(la, d)])
        if got.shape[0] == len(ids[lang][d]):  # document complete
            assert got.tolist() == ids[lang][d]
            assert tok.detokenize(got[:-1]) == texts[lang][d]
            n_whole += 1
    assert n_whole > 50
