"""Start-up: modules the run cannot do without fail loudly before any work; the fusion line."""
import sys

import pytest

from tests.training.test_loop import _cfg
from xlda.training.loop import Trainer


@pytest.mark.parametrize("module", ["xlda.training.checkpointing", "xlda.training.signals"])
def test_missing_checkpointing_or_signals_fails_at_start(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # "import module" now raises ImportError
    trainer = Trainer(_cfg(iters=2), print_fn=lambda *a: None)

    def never(*a, **k):
        raise AssertionError("setup went past the module check")

    monkeypatch.setattr(trainer, "_build_data", never)
    with pytest.raises(ImportError, match=rf"{module} cannot be imported .* the trainer needs it "
                                          "to save checkpoints and handle SIGTERM/SIGUSR1"):
        trainer.setup()


def test_fusion_line_at_start():
    lines = []
    Trainer(_cfg(iters=4), print_fn=lines.append).setup()
    fusion = [line for line in lines if "fusions on:" in line]
    assert fusion == ["[xlda] fusions on: none; off: gradient_accumulation_fusion (no CUDA), "
                      "bias_activation_fusion (no CUDA), apply_rope_fusion (no CUDA), "
                      "persist_layer_norm (no CUDA), bias_dropout_fusion (no CUDA)"]
