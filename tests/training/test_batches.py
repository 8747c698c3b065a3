"""The training DataLoader: Megatron's sample order with any --num-workers, exact resume, and the
per-batch statistics computed from the CPU batch."""
import pytest
import torch

from tests.training.test_wsd import _Seq
from xlda.attention.mask import dense_mask
from xlda.training.batches import BatchCollator, DataStream, TrainData, batch_stats


def _ids(stream, n):
    return [next(stream)["tokens"][:, 0].tolist() for _ in range(n)]


def test_workers_keep_megatron_order_and_resume_exactly():
    serial = DataStream(_Seq(10), 2, dp_rank=1, dp_size=2)
    assert _ids(serial, 3) == [[2, 3], [6, 7], [0, 1]]  # rank 1's slice, wrapping at 10
    parallel = DataStream(_Seq(10), 2, dp_rank=1, dp_size=2, num_workers=2)
    assert _ids(parallel, 3) == [[2, 3], [6, 7], [0, 1]]
    assert parallel.consumed_samples == 12  # handed out, not prefetched
    parallel.consumed_samples = 4  # resume: the loader restarts there
    assert _ids(parallel, 2) == [[6, 7], [0, 1]]
    parallel.close()


def test_collator_adds_cpu_stats_and_layout():
    doc = torch.tensor([[0, 0, 1, 1, 2]], dtype=torch.int32)
    lang = torch.tensor([[0, 0, 1, 1, 0]], dtype=torch.int32)
    sample = {"tokens": doc[0].long(), "labels": doc[0].long(), "loss_mask": torch.ones(5),
              "position_ids": torch.arange(5), "doc_ids": doc[0], "lang_ids": lang[0]}
    batch = BatchCollator("xlda", num_langs=2, thd_layout=True)([sample])
    # doc 1 (ko) sees doc 0 (en): 2 + 4; doc 2 (en) sees doc 1 but not doc 0: 3
    assert batch["stats"] == {"pairs": 13, "causal": 15, "tokens": 5, "kv_rows": [9],
                              "lang_tokens": [3, 2]}
    assert batch["stats"]["pairs"] == int(dense_mask(doc, lang, "xlda").sum())
    assert batch["thd_layout"].kv_index.numel() == 9
    assert batch["thd_layout"].cu_seqlens_q.tolist() == [0, 2, 4, 5]
    assert batch_stats({"doc_ids": doc, "lang_ids": lang}, "document")["kv_rows"] == [5]


def test_pinning_follows_the_device_and_bad_worker_count():
    assert not DataStream(_Seq(4), 2, device=torch.device("cpu")).pin_memory
    assert DataStream(_Seq(4), 2, device=torch.device("cuda", 0)).pin_memory
    with pytest.raises(ValueError, match="--num-workers must be >= 0"):
        DataStream(_Seq(4), 2, num_workers=-1)


def test_annealing_switch_stops_main_workers():
    data = TrainData(_Seq(20), _Seq(20, base=100), micro_batch_size=2, num_workers=1)
    next(data)
    assert data.main._it is not None
    data.switch_to_annealing()
    assert data.main._it is None and next(data)["tokens"][0, 0] == 100
    data.close()


def test_loader_leaves_the_global_rng_alone():
    # dropout draws from torch's global RNG: a loader (re)started on resume must not shift it
    state = torch.get_rng_state()
    stream = DataStream(_Seq(10), 2)
    next(stream)
    stream.consumed_samples = 0
    next(stream)
    assert torch.equal(torch.get_rng_state(), state)
