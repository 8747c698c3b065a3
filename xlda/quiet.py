"""megatron-core's import-time noise, filtered once for every xlda entry point (imported by
``xlda/__init__``, i.e. before megatron-core is): without Transformer Engine and Apex it warns
from half a dozen modules, per process, and Megatron-FSDP logs INFO lines for a feature xlda
does not use. What those warnings say is summed up by :func:`fallback_note`, printed once by
the trainer. Only these exact messages are filtered; every other warning still shows."""
from __future__ import annotations

import importlib.util
import logging
import warnings

_MESSAGES = (
    r"Transformer Engine and Apex are not installed",
    r"Apex is not installed",
    r"full scope is deprecated",  # megatron-core's own default cuda_graph_scope, per config
)
# torch.distributed.checkpoint's deprecation of load_state_dict, called by megatron-core
_FUTURE_MODULES = r"(megatron|torch\.distributed\.checkpoint)(\..*)?"
_FSDP_LOGGERS = ("megatron.core.distributed.fsdp", "megatron_fsdp")


def install() -> None:
    for msg in _MESSAGES:
        warnings.filterwarnings("ignore", message=f".*{msg}", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module=_FUTURE_MODULES)
    warnings.filterwarnings("ignore", message=r".*`load_state_dict` is deprecated",
                            category=FutureWarning)
    for name in _FSDP_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:  # a user's explicit level wins
            logger.setLevel(logging.WARNING)


def install_cpu() -> None:
    """Advice that only concerns GPUs, filtered on a machine without one."""
    warnings.filterwarnings("ignore", message=r".*CUDA_DEVICE_MAX_CONNECTIONS", category=UserWarning)


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def fallback_note() -> str | None:
    """One line on what runs without Transformer Engine / Apex (None when both are installed)."""
    missing = [n for n, m in (("Transformer Engine", "transformer_engine"), ("Apex", "apex"))
               if not _has(m)]
    if not missing:
        return None
    return (f"[xlda] {' and '.join(missing)} not installed: torch norms, torch optimizers and "
            "local multi-tensor ops run instead (fine on CPU and for tests; install them on GPUs "
            "for speed)")
