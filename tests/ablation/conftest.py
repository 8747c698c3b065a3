"""A small prepared data set for the ablation's run tests (in-process, no subprocess tools):
the first 150 LibreOffice pages per language, aligned by page, 6 groups held out, cut into
aligned chunks of <= 30 characters (short relative to the tests' 64-token sequences, so that
affinity packing places pairs), each document's group stored as preprocess_data.py would."""
import numpy as np
import pytest
import torch

from tests.data.fixtures import corpus_docs, train_test_tokenizer
from xlda.ablation.cli import LIBREOFFICE
from xlda.ablation.corpus import GROUP, GROUP_FIELD, LANGS, ReadSpec, chunk_documents, split_groups
from xlda.data.groups import group_hash, groups_path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, corpus):
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    from xlda.data.lang_id import ScriptLangID
    from xlda.data.tokenizer import build_tokenizer

    tmp = tmp_path_factory.mktemp("abl")
    tok_path = train_test_tokenizer(tmp, vocab_size=600, corpus_dir=corpus, docs_per_lang=20)
    tok = build_tokenizer("HuggingFaceTokenizer", tok_path)
    spec = ReadSpec(group_key=LIBREOFFICE["group_key"], group_pattern=LIBREOFFICE["group_pattern"])
    lid = ScriptLangID()
    docs = {lang: [{"text": d["text"], GROUP: spec.group_of(d, lang)}
                   for d in corpus_docs(corpus, lang, 150) if lid.detect(d["text"]) == lang]
            for lang in LANGS}
    sp = split_groups(docs, 6, max_train_docs=20)
    sp.train, sp.heldout = chunk_documents(sp.train, 30), chunk_documents(sp.heldout, 30)
    out = {"tokenizer": str(tok_path), "aligned": True, "train": {}, "heldout": {},
           "group_field": GROUP_FIELD,
           "heldout_groups": {l: [d[GROUP] for d in sp.heldout[l]] for l in LANGS},
           "train_docs": {l: len(sp.train[l]) for l in LANGS}}
    for name, part in (("train", sp.train), ("heldout", sp.heldout)):
        for lang in LANGS:
            prefix = str(tmp / f"{name}_{lang}_text_document")
            b = IndexedDatasetBuilder(prefix + ".bin", dtype=np.uint16)
            for d in part[lang]:
                ids = tok.tokenize(d["text"])[:400] + [tok.eod]
                b.add_item(torch.tensor(ids, dtype=torch.int64))
                b.end_document()
            b.finalize(prefix + ".idx")
            np.save(groups_path(prefix, GROUP_FIELD),
                    np.array([group_hash(d[GROUP]) for d in part[lang]], dtype=np.int64))
            out[name][lang] = prefix
    return out
