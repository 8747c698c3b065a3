"""XLDA mask micro-ablation on real parallel text (issue #6): xlda vs document vs causal masks,
several seeds, held-out loss per language. Entry point: ``xlda.ablation.cli``."""
