"""The training step never reads a device tensor back to the host per micro-batch.

On CPU there is no device, so the batch the loader hands to the step is wrapped in ``OnDevice``,
a tensor subclass that stands for device residency: every result computed from it is OnDevice
too (torch's subclass propagation), and each operation that would make the host wait for a GPU
(``.item()``, ``.cpu()``, ``.tolist()``, ``bool(t)``, ``nonzero``, ...) is recorded."""
import pytest
import torch

import xlda.training.batches as batches
from tests.training.test_loop import _cfg
from xlda.training.loop import Trainer

HOST_READS = {"item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__",
              "nonzero", "argwhere", "unique", "unique_consecutive", "masked_select", "bincount",
              "__repr__", "__format__"}


class OnDevice(torch.Tensor):
    reads: list = []
    counting = False

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if cls.counting:
            to_host = name == "to" and any(
                isinstance(a, (str, torch.device)) and torch.device(a).type == "cpu"
                for a in list(args[1:]) + [kwargs.get("device")] if a is not None)
            repeats = args[1] if len(args) > 1 else kwargs.get("repeats")
            sized = (name == "repeat_interleave" and isinstance(repeats, torch.Tensor)
                     and kwargs.get("output_size") is None)  # output size read from the device
            if name in HOST_READS or to_host or sized:
                cls.reads.append(name)
        return super().__torch_function__(func, types, args, kwargs)


def _fake_device_to(batch, device):
    wrap = lambda t: t.as_subclass(OnDevice) if isinstance(t, torch.Tensor) else t
    out = {}
    for k, v in batch.items():
        if k == "thd_layout":
            out[k] = v._map(wrap)
        else:
            out[k] = wrap(v)
    return out


def _reads_per_step(monkeypatch, backend, microbatches, layout_from_loader=True, steps=4):
    monkeypatch.setattr(batches, "to_device", _fake_device_to)
    cfg = _cfg(iters=steps)
    cfg.scheduler.lr_wsd_decay_iters = 1
    cfg.model.attention_backend = backend
    cfg.training.global_batch_size = 2 * microbatches
    trainer = Trainer(cfg, print_fn=lambda *a: None).setup()
    if not layout_from_loader:
        trainer.data.main.collate_fn.thd_layout = False
    real = trainer._run_schedule
    per_step = []

    def counted(*a, **kw):
        OnDevice.reads, OnDevice.counting = [], True
        try:
            return real(*a, **kw)
        finally:
            OnDevice.counting = False
            per_step.append(list(OnDevice.reads))

    monkeypatch.setattr(trainer, "_run_schedule", counted)
    result = trainer.train()
    assert result.iteration == steps
    return per_step


@pytest.mark.parametrize("backend", ["sdpa", "thd"])
def test_step_path_reads_nothing_back(monkeypatch, backend):
    # "thd" is the torch reference of the TE path: its layout comes from the loader workers. The
    # reference kernel itself slices with cu_seqlens.tolist() (that is what makes it a reference,
    # TE takes the device tensors), so for thd only the layout and statistics are checked.
    reads = _reads_per_step(monkeypatch, backend, microbatches=3)
    if backend == "sdpa":
        assert reads == [[]] * 4
    else:
        assert all(set(r) <= {"tolist"} for r in reads), reads
        assert all(r.count("tolist") == 3 * 2 * 2 for r in reads)  # 3 mb x 2 layers x (q, kv)


def test_probe_catches_a_layout_built_on_the_device(monkeypatch):
    # The control: the same THD run with the layout left to the device side reads back per
    # micro-batch (nonzero, bool(), int()), so the probe would catch a sync in the step path.
    reads = _reads_per_step(monkeypatch, "thd", microbatches=2, layout_from_loader=False, steps=3)
    assert {"nonzero", "__bool__", "__int__"} <= set(reads[0])
