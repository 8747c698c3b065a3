"""The packing index is built once, cached as .npy next to the data, safe under concurrency."""
import multiprocessing as mp
import os

import numpy as np

from tests.data.test_dataset import EN_DOCS, KO_DOCS, TOK, write_indexed
from xlda.data import XLDADatasetConfig, build_xlda_datasets
from xlda.data.index_cache import BUILD_COUNTER, load_or_build
from xlda.data.packing import build_packed_index


def _config(prefixes, **kw):
    args = dict(random_seed=3, sequence_length=8, split="1,0,0", tokenizer=TOK,
                lang_prefixes=prefixes)
    args.update(kw)
    return XLDADatasetConfig(**args)


def _prefixes(tmp_path):
    return {"en": [write_indexed(tmp_path / "en_text_document", EN_DOCS * 5)],
            "ko": [write_indexed(tmp_path / "ko_text_document", KO_DOCS * 5)]}


def test_second_build_loads_from_cache(tmp_path):
    prefixes = _prefixes(tmp_path)
    before = BUILD_COUNTER["builds"]
    a = build_xlda_datasets(_config(prefixes), [20, 0, 0])[0]
    assert BUILD_COUNTER["builds"] == before + 1
    cache = tmp_path / "cache" / "XLDADataset_indices"  # next to the data, like Megatron
    files = sorted(os.listdir(cache))
    npy = [f for f in files if f.endswith(".npy")]
    assert len(npy) == 6 and any(f.endswith("-description.json") for f in files)
    mtimes = {f: os.path.getmtime(cache / f) for f in files}
    b = build_xlda_datasets(_config(prefixes), [20, 0, 0])[0]
    assert BUILD_COUNTER["builds"] == before + 1  # loaded, not rebuilt
    assert {f: os.path.getmtime(cache / f) for f in os.listdir(cache)} == mtimes
    assert isinstance(b.index.run_start, np.memmap)  # loaded read-only from the cache
    assert all(np.array_equal(a[i]["tokens"], b[i]["tokens"]) for i in range(20))
    # any parameter that changes the index gives a new file set
    build_xlda_datasets(_config(prefixes, xlda_rho=0.25), [20, 0, 0])
    build_xlda_datasets(_config(prefixes, random_seed=4), [20, 0, 0])
    build_xlda_datasets(_config(prefixes), [21, 0, 0])
    assert BUILD_COUNTER["builds"] == before + 4
    assert len([f for f in os.listdir(cache) if f.endswith(".npy")]) == 4 * 6


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
    lengths = [rng.integers(1, 200, size=3000), rng.integers(1, 200, size=3000)]
    ids = [np.arange(3000)] * 2
    barrier.wait()  # start together
    before = BUILD_COUNTER["builds"]
    idx = load_or_build(cache_dir, "samehash-XLDADataset-train", {"x": 1},
                        lambda: build_packed_index(lengths, ids, [0.5, 0.5], 0.5, 512, 1500, 9))
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
    assert len([f for f in files if f.endswith(".npy")]) == 6
