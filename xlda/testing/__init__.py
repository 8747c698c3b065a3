"""Test helpers shared by xlda's test suite (multi-process CPU runs)."""
from xlda.testing.distributed import DistributedRunError, free_port, run_distributed

__all__ = ["DistributedRunError", "free_port", "run_distributed"]
