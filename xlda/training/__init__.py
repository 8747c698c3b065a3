"""Training run: typed configs, distributed set-up, the loop, WSD + annealing swap, metrics."""
from xlda.training.config import RunConfig

__all__ = ["RunConfig"]
