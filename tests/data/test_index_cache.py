"""The packing index is built once, cached next to the data, verified on open, safe under
concurrency."""
import json
import logging
import multiprocessing as mp
import os

import numpy as np
import pytest

from tests.data.test_dataset import EN_DOCS, KO_DOCS, TOK, write_indexed
from xlda.data import XLDADatasetConfig, build_xlda_datasets
from xlda.data.index_cache import BUILD_COUNTER, load_or_build, verify
from xlda.data.packing import ARRAY_NAMES, FORMAT_VERSION, build_packed_index


def _config(prefixes, **kw):
    args = dict(random_seed=3, sequence_length=8, split="1,0,0", tokenizer=TOK,
                lang_prefixes=prefixes)
    args.update(kw)
    return XLDADatasetConfig(**args)


def _prefixes(tmp_path):
    return {"en": [write_indexed(tmp_path / "en_text_document", EN_DOCS * 5)],
            "ko": [write_indexed(tmp_path / "ko_text_document", KO_DOCS * 5)]}


def _cache(tmp_path):
    return tmp_path / "cache" / "XLDADataset_indices"  # next to the data, like Megatron


def _index_dirs(cache):
    return sorted(d for d in os.listdir(cache) if os.path.isdir(cache / d))


def test_second_build_loads_from_cache(tmp_path):
    prefixes = _prefixes(tmp_path)
    before = BUILD_COUNTER["builds"]
    a = build_xlda_datasets(_config(prefixes), [20, 0, 0])[0]
    assert BUILD_COUNTER["builds"] == before + 1
    cache = _cache(tmp_path)
    (d,) = _index_dirs(cache)
    files = sorted(os.listdir(cache / d))
    assert files == sorted([f"{n}.bin" for n in ARRAY_NAMES] + ["description.json"])
    desc = json.loads((cache / d / "description.json").read_text())
    assert desc["format"] == FORMAT_VERSION and set(desc["arrays"]) == set(ARRAY_NAMES)
    mtimes = {f: os.path.getmtime(cache / d / f) for f in files}
    b = build_xlda_datasets(_config(prefixes), [20, 0, 0])[0]
    assert BUILD_COUNTER["builds"] == before + 1  # loaded, not rebuilt
    assert {f: os.path.getmtime(cache / d / f) for f in files} == mtimes
    assert isinstance(b.index.piece_doc, np.memmap)  # loaded read-only from the cache
    assert all(np.array_equal(a[i]["tokens"], b[i]["tokens"]) for i in range(20))
    # any parameter that changes the index gives a new index directory
    build_xlda_datasets(_config(prefixes, xlda_rho=0.25), [20, 0, 0])
    build_xlda_datasets(_config(prefixes, random_seed=4), [20, 0, 0])
    build_xlda_datasets(_config(prefixes), [21, 0, 0])
    assert BUILD_COUNTER["builds"] == before + 4
    assert len(_index_dirs(cache)) == 4


def test_cached_index_opens_without_reading_document_lengths(tmp_path, monkeypatch):
    # a rank that opens a cached index needs no token totals (no pass over sequence_lengths)
    prefixes = _prefixes(tmp_path)
    build_xlda_datasets(_config(prefixes), [20, 0, 0])
    from xlda.data.dataset import XLDACorpus

    def boom(self):
        raise AssertionError("token totals read for a cached index")
    monkeypatch.setattr(XLDACorpus, "tokens", property(boom))
    train = build_xlda_datasets(_config(prefixes), [20, 0, 0])[0]
    assert len(train) == 20 and len(train.probs) == 2


@pytest.mark.parametrize("damage", ["truncate", "empty", "garble", "edit", "delete", "desc"])
def test_damaged_cache_is_detected_and_rebuilt(tmp_path, damage, caplog):
    prefixes = _prefixes(tmp_path)
    good = build_xlda_datasets(_config(prefixes), [20, 0, 0])[0]
    want = [good[i]["lang_ids"].tolist() for i in range(20)]
    (d,) = _index_dirs(_cache(tmp_path))
    target = _cache(tmp_path) / d / "piece_lang.bin"
    raw = bytearray(target.read_bytes())
    if damage == "truncate":
        target.write_bytes(bytes(raw[:-1]))
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "garble":
        target.write_bytes(bytes(b ^ 0x55 for b in raw))
    elif damage == "edit":  # one flipped language that is still a valid language id
        raw[0] ^= 1
        target.write_bytes(bytes(raw))
    elif damage == "delete":
        target.unlink()
    else:
        (_cache(tmp_path) / d / "description.json").write_text("{not json")
    assert verify(str(_cache(tmp_path) / d)) is not None
    before = BUILD_COUNTER["builds"]
    with caplog.at_level(logging.WARNING):
        again = build_xlda_datasets(_config(prefixes), [20, 0, 0])[0]
    assert BUILD_COUNTER["builds"] == before + 1  # rebuilt under the lock
    assert any("damaged" in r.getMessage() for r in caplog.records)
    assert [again[i]["lang_ids"].tolist() for i in range(20)] == want
    assert verify(str(_cache(tmp_path) / d)) is None


def test_old_format_cache_is_never_read(tmp_path):
    # a version-2 style cache (flat .npy files) sits next to the data: a new directory is built
    prefixes = _prefixes(tmp_path)
    cache = _cache(tmp_path)
    cache.mkdir(parents=True)
    (cache / "abc-XLDADataset-train-description.json").write_text("{}")
    np.save(cache / "abc-XLDADataset-train-run_start.npy", np.arange(3))
    before = BUILD_COUNTER["builds"]
    build_xlda_datasets(_config(prefixes), [20, 0, 0])
    assert BUILD_COUNTER["builds"] == before + 1 and len(_index_dirs(cache)) == 1
    # and a directory claiming another format version is rebuilt, not misread
    (d,) = _index_dirs(cache)
    desc = json.loads((cache / d / "description.json").read_text())
    desc["format"] = FORMAT_VERSION - 1
    (cache / d / "description.json").write_text(json.dumps(desc))
    assert "format" in verify(str(cache / d))
    build_xlda_datasets(_config(prefixes), [20, 0, 0])
    assert BUILD_COUNTER["builds"] == before + 2


def test_path_to_cache_and_data_change_invalidates(tmp_path):
    prefixes = _prefixes(tmp_path)
    cache = tmp_path / "elsewhere"
    build_xlda_datasets(_config(prefixes, path_to_cache=str(cache)), [10, 0, 0])
    n = len(os.listdir(cache))
    write_indexed(tmp_path / "ko_text_document", KO_DOCS * 6)  # data changed: new hash
    build_xlda_datasets(_config(prefixes, path_to_cache=str(cache)), [10, 0, 0])
    assert len(os.listdir(cache)) > n


def _worker(cache_dir, barrier, queue):
    rng = np.random.default_rng(0)
    lengths = [rng.integers(1, 200, size=3000).astype(np.int32)] * 2
    ids = [range(3000)] * 2
    barrier.wait()  # start together
    before = BUILD_COUNTER["builds"]
    idx = load_or_build(cache_dir, "samehash-XLDADataset-train", {"x": 1},
                        lambda out: build_packed_index(lengths, ids, [0.5, 0.5], 0.5, 512, 1500, 9,
                                   out_dir=out))
    queue.put((BUILD_COUNTER["builds"] - before,
               {k: np.asarray(v).tobytes() for k, v in idx.arrays().items()}))


def test_concurrent_builds_one_file_set(tmp_path):
    ctx = mp.get_context("fork")  # spawn would re-import torch+megatron 4x (slow)
    barrier, queue = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), barrier, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(r[0] for r in results) == 1  # exactly one process built
    assert all(r[1] == results[0][1] for r in results)
    files = sorted(os.listdir(tmp_path))
    assert not [f for f in files if ".tmp-" in f]
    assert files == ["samehash-XLDADataset-train", "samehash-XLDADataset-train.lock"]


def _rank_build(rank, world, prefixes, cache):
    import logging as lg

    from xlda.data import dataset as xd
    records = []

    class Keep(lg.Handler):
        def emit(self, record):
            records.append(record.getMessage())
    xd.logger.addHandler(Keep())
    before = BUILD_COUNTER["builds"]
    train = build_xlda_datasets(_config(prefixes, path_to_cache=cache), [20, 0, 0])[0]
    return BUILD_COUNTER["builds"] - before, len(train), records


def test_distributed_build_on_rank0_with_a_sized_timeout(tmp_path):
    # rank 0 builds while rank 1 waits on a gloo group whose timeout is set for the build (not
    # megatron-core's barrier on the default group); rank 1 then opens the cache
    from xlda.testing.distributed import run_distributed

    prefixes = _prefixes(tmp_path)
    res = run_distributed(_rank_build, 2, args=(prefixes, str(tmp_path / "c")), timeout=240,
                          shims=False)
    (b0, n0, log0), (b1, n1, log1) = res
    assert (b0, b1) == (1, 0) and n0 == n1 == 20
    assert any("building it on rank 0 (expected" in m and "wait up to 30 min" in m for m in log0)
    assert not log1
