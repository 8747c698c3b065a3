"""CPU shims for megatron-core: the one place where its hard CUDA uses are mapped to CPU.

megatron-core assumes a GPU in a handful of spots (``torch.cuda.current_device()`` for RoPE and
buffers, ``device="cuda"`` literals in the pipeline schedules / optimizer / grad clipping, the
CUDA RNG state behind the tensor-parallel RNG tracker, ``torch.cuda.synchronize``). Without a
GPU they raise "Torch not compiled with CUDA enabled". Tests and the CPU demo run megatron-core
with gloo, so :func:`install` rebinds the name ``torch`` inside megatron-core's modules to a thin
proxy that sends those calls to the CPU. Real torch is not modified, except ``Tensor.cuda``
(megatron calls ``t.cuda()`` on CPU tensors; it becomes a no-op).

Only ever called when ``torch.cuda.is_available()`` is False (see :func:`maybe_install`).
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import types

import torch

_INSTALLED = False

# Modules whose CUDA uses are reached by GPT training (fwd/bwd, TP/PP schedules, DDP, optimizer,
# grad clipping, dist checkpointing). Imported first so the proxy can be bound into them.
_MODULES = (
    "megatron.core.utils",
    "megatron.core.parallel_state",
    "megatron.core.rerun_state_machine",
    "megatron.core.timers",
    "megatron.core.tensor_parallel.random",
    "megatron.core.tensor_parallel.layers",
    "megatron.core.tensor_parallel.mappings",
    "megatron.core.tensor_parallel.data",
    "megatron.core.tensor_parallel.utils",
    "megatron.core.models.common.embeddings.rotary_pos_embedding",
    "megatron.core.models.common.language_module.language_module",
    "megatron.core.models.gpt.gpt_model",
    "megatron.core.transformer.utils",
    "megatron.core.transformer.module",
    "megatron.core.transformer.mlp",
    "megatron.core.transformer.attention",
    "megatron.core.transformer.dot_product_attention",
    "megatron.core.transformer.transformer_layer",
    "megatron.core.transformer.multi_token_prediction",
    "megatron.core.fusions.fused_softmax",
    "megatron.core.pipeline_parallel.schedules",
    "megatron.core.pipeline_parallel.p2p_communication",
    "megatron.core.pipeline_parallel.utils",
    "megatron.core.distributed.param_and_grad_buffer",
    "megatron.core.distributed.distributed_data_parallel",
    "megatron.core.optimizer.optimizer",
    "megatron.core.optimizer.clip_grads",
    "megatron.core.optimizer.grad_scaler",
    "megatron.core.optimizer.distrib_optimizer",
    "megatron.core.optimizer",
    "megatron.core.dist_checkpointing.strategies.torch",
    "megatron.core.dist_checkpointing.strategies.fully_parallel",
    "megatron.core.dist_checkpointing.exchange_utils",
    # 0.19: the torch_dist save always runs its (sync) async request, whose preload step calls
    # torch.cuda.synchronize(); in 0.16.1 the same module is reached only by async saves.
    "megatron.core.dist_checkpointing.strategies.filesystem_async",
    "megatron.core.dist_checkpointing.strategies.state_dict_saver",
    "megatron.core.datasets.blended_megatron_dataset_builder",
)

_FACTORIES = (
    "tensor", "zeros", "ones", "empty", "full", "arange", "randn", "rand", "randint",
    "zeros_like", "ones_like", "empty_like", "full_like", "as_tensor",
)


def _is_cuda(device) -> bool:
    if device is None:
        return False
    if isinstance(device, int):
        return True  # a bare ordinal means a CUDA device
    if isinstance(device, torch.device):
        return device.type == "cuda"
    return isinstance(device, str) and device.startswith("cuda")


def _cpu_factory(fn):
    def wrapped(*args, **kwargs):
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
        return fn(*args, **kwargs)

    wrapped.__name__ = getattr(fn, "__name__", "factory")
    return wrapped


class _Stream:
    """Stand-in for torch.cuda.Stream/Event: ordering is trivial on one CPU stream."""

    def __init__(self, *args, **kwargs):
        pass

    def wait_stream(self, *args, **kwargs):
        pass

    def wait_event(self, *args, **kwargs):
        pass

    def record_event(self, *args, **kwargs):
        return _Stream()

    def record(self, *args, **kwargs):
        pass

    def synchronize(self):
        pass

    def query(self):
        return True


class _CpuCuda(types.ModuleType):
    """What megatron-core sees as ``torch.cuda`` on a CPU-only machine."""

    FloatTensor = torch.Tensor  # grad clipping asserts isinstance(g, torch.cuda.FloatTensor)
    Stream = _Stream
    Event = _Stream

    def __init__(self):
        super().__init__("torch.cuda(cpu-shim)")

    @staticmethod
    def current_device():
        return "cpu"

    @staticmethod
    def device_count():
        return 1

    @staticmethod
    def is_available():
        return False

    @staticmethod
    def synchronize(*args, **kwargs):
        pass

    @staticmethod
    def current_stream(*args, **kwargs):
        return _Stream()

    @staticmethod
    def default_stream(*args, **kwargs):
        return _Stream()

    @staticmethod
    def stream(*args, **kwargs):
        return contextlib.nullcontext()

    @staticmethod
    def get_rng_state(*args, **kwargs):
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state, *args, **kwargs):
        torch.set_rng_state(state)

    @staticmethod
    def manual_seed(seed):
        torch.manual_seed(seed)

    @staticmethod
    def memory_allocated(*args, **kwargs):
        return 0

    @staticmethod
    def max_memory_allocated(*args, **kwargs):
        return 0

    @staticmethod
    def empty_cache():
        pass

    @staticmethod
    def nvtx_range_push(*args, **kwargs):
        pass

    def __getattr__(self, name):
        return getattr(torch.cuda, name)


class _CpuTorch(types.ModuleType):
    """A view of ``torch`` whose CUDA-device requests land on the CPU."""

    def __init__(self):
        super().__init__("torch(cpu-shim)")
        self.cuda = _CpuCuda()
        for name in _FACTORIES:
            setattr(self, name, _cpu_factory(getattr(torch, name)))

    def __getattr__(self, name):
        return getattr(torch, name)


def _get_rng_state(device="cuda", clone=False, graph_safe=False):
    state = torch.get_rng_state()
    return state.clone() if clone else state


def _set_rng_state(new_state, device=-1, graph_safe=False):
    torch.set_rng_state(new_state)


def _clip_grad_by_total_norm_fp32(parameters, max_norm, total_norm, use_decoupled_grad=False):
    """megatron's version asserts ``grad.type() == 'torch.cuda.FloatTensor'``; same scaling here."""
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    attr = "decoupled_grad" if use_decoupled_grad else "grad"
    grads = [getattr(p, attr, None) for p in parameters]
    clip_coeff = max_norm / (total_norm + 1.0e-6)
    if clip_coeff < 1.0:
        for g in grads:
            if g is not None:
                g.detach().mul_(clip_coeff)


def install() -> None:
    """Bind the CPU proxy into megatron-core's modules. Idempotent."""
    global _INSTALLED
    if _INSTALLED:
        return
    if torch.cuda.is_available():
        raise RuntimeError("xlda.cpu_shims.install() is only for machines without a GPU")
    proxy = _CpuTorch()
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue  # module absent in this megatron-core version
    for name, mod in list(sys.modules.items()):
        if name.startswith("megatron.core") and getattr(mod, "torch", None) is torch:
            mod.torch = proxy
    random = sys.modules["megatron.core.tensor_parallel.random"]
    random._get_cuda_rng_state = _get_rng_state
    random._set_cuda_rng_state = _set_rng_state
    # The tracker warns when the CPU RNG moves inside a fork; here the "CUDA" RNG *is* the CPU one.
    logging.getLogger(random.__name__).addFilter(
        lambda record: "CPU RNG state changed" not in record.getMessage()
    )
    for mod_name in ("megatron.core.optimizer.clip_grads", "megatron.core.optimizer.optimizer"):
        mod = sys.modules.get(mod_name)
        if mod is not None and hasattr(mod, "clip_grad_by_total_norm_fp32"):
            mod.clip_grad_by_total_norm_fp32 = _clip_grad_by_total_norm_fp32
    # megatron calls t.cuda() / t.cuda(device) on freshly made CPU tensors.
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    _INSTALLED = True


def maybe_install() -> bool:
    """Install the shims when (and only when) no GPU exists. Returns whether they are active."""
    if torch.cuda.is_available():
        return False
    install()
    return True
