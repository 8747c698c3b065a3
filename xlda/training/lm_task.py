"""Pretraining as a TrainTask: the packed XLDA datasets (with the WSD annealing blend), the LM
loss over ``loss_mask`` tokens, and evaluation on the validation split per language."""
from __future__ import annotations

from xlda.training.task import BaseTask, TaskData


def lm_collator(cfg, num_langs: int, cls=None):
    """The DataLoader collate_fn for this run's mask, with the THD layout the thd/te executors
    read built on the CPU (``cls``: a BatchCollator subclass, e.g. DPO's pair rows)."""
    from xlda.training.batches import BatchCollator

    m = cfg.model
    return (cls or BatchCollator)(m.attention_mask_type, num_langs,
                                  thd_layout=m.attention_backend in ("thd", "te"))


def lm_loss(batch: dict, output_tensor, names: tuple, num_langs: int, loss_name: str = "lm loss"):
    """Token-summed LM loss; with ``num_langs``, also each language's (sum, count) under
    ``names[1:]`` (one scatter per micro-batch)."""
    import torch

    losses = output_tensor.float()
    mask = batch["loss_mask"].float()
    loss_sum = (losses * mask).sum()
    num_tokens = mask.sum().to(torch.int)
    report = {loss_name: torch.stack([loss_sum.detach(), mask.sum()])}
    if num_langs:
        li = batch["lang_ids"].long().view(-1)
        zeros = torch.zeros(num_langs, device=losses.device)
        sums = zeros.clone().index_add_(0, li, (losses * mask).detach().view(-1))
        cnts = zeros.clone().index_add_(0, li, mask.view(-1))
        for i, name in enumerate(names[1:]):
            report[name] = torch.stack([sums[i], cnts[i]])
    return loss_sum, num_tokens, report


class LMTask(BaseTask):
    """Next-token prediction on the run's packed datasets (build_run_datasets)."""

    def __init__(self):
        self.languages: tuple = ()

    def build_data(self, cfg, log) -> TaskData:
        from xlda.training.batches import build_run_datasets

        ds = build_run_datasets(cfg, log=log)
        self.languages = tuple(ds.languages)
        return TaskData(ds.train, lm_collator(cfg, len(self.languages)), self.languages,
                        valid=ds.valid, annealing=ds.annealing, vocab_size=ds.vocab_size)

    def metric_names(self, training: bool) -> tuple:
        if training:
            return (self.loss_name,)
        return (self.loss_name, *(f"{lang} {self.loss_name}" for lang in self.languages))

    def loss(self, batch, output_tensor, training: bool):
        names = self.metric_names(training)
        return lm_loss(batch, output_tensor, names, 0 if training else len(self.languages),
                       self.loss_name)

    def evaluate(self, trainer) -> dict:
        """Mean loss over --eval-iters global batches of the validation split, per language."""
        iters = trainer.cfg.training.eval_iters
        if not iters or trainer.valid is None:
            return {}
        return trainer.eval_metrics(trainer.valid, iters)
