"""The CPU shims let megatron-core build and run a GPTModel without CUDA."""
import pytest
import torch

from xlda import cpu_shims

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="shims are for CPU-only machines")


def test_proxy_maps_cuda_factories_and_rng_to_cpu():
    cpu_shims.install()
    import megatron.core.pipeline_parallel.schedules as schedules
    import megatron.core.tensor_parallel.random as mp_random

    t = schedules.torch.zeros([], dtype=torch.int, device="cuda")
    assert t.device.type == "cpu"
    assert schedules.torch.cuda.current_device() == "cpu"
    assert isinstance(torch.ones(2), schedules.torch.cuda.FloatTensor)
    # real torch is untouched apart from Tensor.cuda becoming a no-op
    assert not isinstance(torch.cuda, cpu_shims._CpuCuda)
    x = torch.ones(3)
    assert x.cuda() is x
    # The TP RNG tracker's fork restores the outer RNG stream exactly.
    tracker = mp_random.CudaRNGStatesTracker()
    tracker.add("s", 7)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with tracker.fork("s"):
        inside = torch.rand(2)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(7)
    assert torch.equal(inside, torch.rand(2))


def test_install_is_idempotent():
    cpu_shims.install()
    cpu_shims.install()
    assert cpu_shims.maybe_install() is True


def test_grad_clipping_scales_cpu_grads():
    cpu_shims.install()
    import megatron.core.optimizer.optimizer as opt_mod

    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    opt_mod.clip_grad_by_total_norm_fp32([p], max_norm=1.0, total_norm=5.0)
    assert torch.allclose(p.grad, torch.tensor([0.6, 0.8]), atol=1e-6)
    q = torch.nn.Parameter(torch.zeros(1))
    q.grad = torch.tensor([0.5])
    opt_mod.clip_grad_by_total_norm_fp32([q], max_norm=1.0, total_norm=0.5)  # below the limit
    assert q.grad.item() == 0.5
