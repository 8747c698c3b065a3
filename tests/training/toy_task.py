"""A toy TrainTask, whole in this file (what adding a task takes): count up by one modulo V.

Sample i is ``i, i+1, ...`` (mod V) over S tokens, one document; the loss is the next token on
the second half of the sequence only, and the task names two metrics of its own."""
import torch

from xlda.training.lm_task import lm_collator, lm_loss
from xlda.training.task import BaseTask, TaskData

V = 64


class CountingDataset(torch.utils.data.Dataset):
    def __init__(self, n: int, S: int, offset: int = 0):
        self.n, self.S, self.offset = n, S, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        S = self.S
        seq = (torch.arange(S + 1) + i + self.offset) % V
        loss_mask = torch.zeros(S)
        loss_mask[S // 2:] = 1.0
        return {"tokens": seq[:-1], "labels": seq[1:], "loss_mask": loss_mask,
                "position_ids": torch.arange(S), "doc_ids": torch.zeros(S, dtype=torch.long),
                "lang_ids": torch.zeros(S, dtype=torch.long)}


class CountingTask(BaseTask):
    loss_name = "count loss"
    log_formats = {"masked_share": "masked {:.2f}"}

    def build_data(self, cfg, log):
        S = cfg.data.seq_length
        log("[toy] counting task")
        return TaskData(CountingDataset(1000, S), lm_collator(cfg, 1), ("num",),
                        valid=CountingDataset(8, S, offset=7), vocab_size=V)

    def metric_names(self, training):
        return (self.loss_name, "masked_share", "never_counted")

    def loss(self, batch, output_tensor, training):
        loss_sum, n, report = lm_loss(batch, output_tensor, (self.loss_name,), 0, self.loss_name)
        mask = batch["loss_mask"]
        report["masked_share"] = torch.stack([mask.sum(), torch.tensor(float(mask.numel()))])
        report["never_counted"] = torch.zeros(2)  # a metric with no count: left out of the log
        return loss_sum, n, report

    def evaluate(self, trainer):
        return trainer.eval_metrics(trainer.valid, 1)
