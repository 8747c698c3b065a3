"""The TrainTask seam: a task of one file (tests/training/toy_task.py) trains, logs and evaluates
through the unchanged loop, with its own named metrics reduced as sum / count."""
import numpy as np
import pytest

from tests.training.test_loop import _cfg
from tests.training.toy_task import CountingTask, V
from xlda.training.loop import Trainer
from xlda.training.task import TrainTask


def _toy(iters=30, **kw):
    cfg = _cfg(iters=iters, **kw)
    cfg.optimizer.lr, cfg.optimizer.min_lr = 1e-2, 1e-3
    return cfg


def test_every_task_meets_the_protocol():
    from xlda.posttrain.dpo_task import DPOTask
    from xlda.posttrain.sft_task import SFTTask
    from xlda.training.lm_task import LMTask

    for task in (LMTask(), SFTTask(), DPOTask(), CountingTask()):
        assert isinstance(task, TrainTask), type(task).__name__


def test_toy_task_trains_logs_and_evaluates_by_name():
    lines = []
    trainer = Trainer(_toy(iters=30, eval_interval=30, eval_iters=1), CountingTask(),
                      print_fn=lines.append).setup()
    assert "[toy] counting task" in lines
    assert trainer.cfg.model.vocab_size == V  # the task's vocabulary sized the embedding
    result = trainer.train()
    hist = result.history
    # exactly half of every sample's tokens carry the loss: sum / count over all micro-batches
    assert [h["masked_share"] for h in hist] == [0.5] * 30
    assert all("never_counted" not in h and "lm loss" not in h for h in hist)
    losses = [h["count loss"] for h in hist]
    rows = trainer.cfg.model.padded_vocab_size(1)  # the padding rows enter the softmax too
    assert losses[0] == pytest.approx(np.log(rows), abs=0.3)  # near uniform at the start
    assert np.mean(losses[-5:]) < losses[0] - 1.0, losses  # +1 mod V is learnable
    shown = [line for line in lines if line.startswith("iter")]
    assert shown and all("count loss" in line and "| masked 0.50" in line for line in shown)
    ev = result.eval_history[-1]
    assert set(ev) == {"iteration", "count loss", "masked_share"} and ev["masked_share"] == 0.5


def test_forward_only_gathers_per_sample_values_in_dataset_order():
    trainer = Trainer(_toy(iters=4), CountingTask(), print_fn=lambda *a: None).setup()
    ds = trainer.valid  # 8 samples; micro-batch 2: 4 forward micro-batches

    def first_token_and_loss_tokens(batch, output_tensor):
        values = np.stack([batch["tokens"][:, 0].numpy(), batch["loss_mask"].sum(-1).numpy()], 1)
        import torch

        return batch["index"], torch.from_numpy(values)

    class Indexed:
        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            import torch

            return {**ds[i], "index": torch.tensor(i)}

    got = trainer.forward_only(Indexed(), first_token_and_loss_tokens, width=2)
    S = trainer.cfg.data.seq_length
    assert got.shape == (8, 2) and got.dtype == np.float64
    assert got[:, 0].tolist() == [float((i + 7) % V) for i in range(8)]
    assert got[:, 1].tolist() == [S / 2] * 8
