"""DPO as a TrainTask: sigmoid DPO with reference log-probs precomputed by the frozen start model
(one model in memory), cached next to the data. Logs ``dpo loss``, reward_margin,
reward_accuracy, reward_chosen and reward_rejected per iteration; evaluation reports the loss,
accuracy and margin on the --valid-data-path pairs."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from xlda.posttrain.start import ChatTask, pad_id, read_records_of, renderer, start_checkpoint
from xlda.training.lm_task import lm_collator
from xlda.training.task import BaseTask, TaskData

REWARDS = (("reward_margin", "margins"), ("reward_accuracy", "accuracies"),
           ("reward_chosen", "chosen_rewards"), ("reward_rejected", "rejected_rewards"))


def response_logps(batch: dict, output_tensor) -> torch.Tensor:
    """Summed response log-probs ``[B, 2]`` (chosen, rejected) from per-token losses."""
    return -(output_tensor.float() * batch["loss_mask"].float()).sum(-1).view(-1, 2)


class DPOTask(ChatTask, BaseTask):
    loss_name = "dpo loss"
    rows_per_sample = 2  # a chosen and a rejected row per pair
    log_formats = {"reward_accuracy": "reward acc {:.3f}", "reward_margin": "margin {:.4f}"}

    def build_data(self, cfg, log) -> TaskData:
        from xlda.posttrain.dpo_data import PairCollator, PairDataset, tokenize_pairs

        self.cfg, p = cfg, cfg.posttrain
        self.renderer = r = renderer(cfg)
        self.chat_template = r.template
        S, pad = cfg.data.seq_length, pad_id(r)
        log(f"[xlda] DPO chat template: {r.source}; beta {p.dpo_beta}")

        def dataset(paths, what):
            pairs, bad = read_records_of(paths, lambda f, b: tokenize_pairs(f, r, S, b), p.strict,
                                         log, f"DPO {what}", "pairs")
            return PairDataset(pairs, S, pad), bad

        self.pairs, self.bad_records = dataset(p.data_path, "train")
        self.valid_pairs = dataset(p.valid_data_path, "valid")[0] if p.valid_data_path else None
        # the valid pairs are scored by evaluate() (whole-set forward passes), not batch by batch
        return TaskData(self.pairs, lm_collator(cfg, 1, PairCollator), self.pairs.languages,
                        vocab_size=len(r.tok))


    def metric_names(self, training: bool) -> tuple:
        return (self.loss_name, *(name for name, _ in REWARDS))

    def loss(self, batch, output_tensor, training: bool):
        from xlda.posttrain.dpo_loss import dpo_sigmoid

        logps = response_logps(batch, output_tensor)
        n = logps.shape[0]
        ref = batch["ref_logps"].to(logps).view(-1, 2)
        d = dpo_sigmoid(logps[:, 0], logps[:, 1], ref[:, 0], ref[:, 1], self.cfg.posttrain.dpo_beta)
        loss_sum = d["losses"].sum()
        count = loss_sum.new_tensor(float(n))
        report = {self.loss_name: torch.stack([loss_sum.detach(), count])}
        for name, key in REWARDS:
            report[name] = torch.stack([d[key].detach().sum(), count])
        return loss_sum, torch.tensor(n, dtype=torch.int, device=logps.device), report

    # -- reference log-probs -------------------------------------------------------------------
    def ready(self, trainer) -> None:
        p = self.cfg.posttrain
        self.pairs.ref_logps = self._reference(trainer, self.pairs, p.data_path)
        if self.valid_pairs is not None:
            self.valid_pairs.ref_logps = self._reference(trainer, self.valid_pairs,
                                                         p.valid_data_path)

    def sequence_logps(self, trainer, dataset):
        """Summed response log-probs ``[N, 2]`` of every pair under the trainer's weights."""
        return trainer.forward_only(
            dataset, lambda batch, out: (batch["index"], response_logps(batch, out)), width=2)

    def pair_metrics(self, trainer, dataset) -> dict:
        """DPO loss, reward accuracy and margin of ``dataset`` under the trainer's weights."""
        from xlda.posttrain.dpo_loss import dpo_sigmoid

        lp = torch.from_numpy(self.sequence_logps(trainer, dataset))
        ref = torch.from_numpy(dataset.ref_logps)
        d = dpo_sigmoid(lp[:, 0], lp[:, 1], ref[:, 0], ref[:, 1], self.cfg.posttrain.dpo_beta)
        return {"dpo loss": float(d["losses"].mean()), "reward_accuracy": float(d["accuracies"].mean()),
                "reward_margin": float(d["margins"].mean())}

    def evaluate(self, trainer) -> dict:
        return self.pair_metrics(trainer, self.valid_pairs) if self.valid_pairs is not None else {}

    def _start_identity(self) -> str:
        from xlda.checkpoint_layout import iter_dir, read_latest

        cfg = self.cfg
        load = start_checkpoint(cfg)
        if not load:
            return f"init seed {cfg.training.seed} " + repr(sorted(
                cfg.to_dict()["model"].items())) + repr(cfg.to_dict()["parallel"])
        it = read_latest(load)
        files = sorted(p for p in iter_dir(load, it).rglob("*") if p.is_file()
                       and p.stat().st_size < (1 << 20))  # the small files: manifest, state
        h = hashlib.sha256(f"{Path(load).resolve()} {it}".encode())
        for f in files:
            h.update(f.name.encode() + f.read_bytes())
        return h.hexdigest()

    def _ref_cache(self, paths) -> tuple:
        from xlda.files import sha256_file

        h = hashlib.sha256()
        for f in paths:
            h.update(sha256_file(f).encode())
        tok = Path(self.cfg.data.tokenizer_model)
        h.update(sha256_file(tok / "tokenizer.json" if tok.is_dir() else tok).encode())
        h.update(self.renderer.template.encode())
        h.update(f"S={self.cfg.data.seq_length}".encode())
        h.update(self._start_identity().encode())
        key = h.hexdigest()
        where = Path(self.cfg.posttrain.ref_cache_dir or Path(paths[0]).parent)
        return where / f"{Path(paths[0]).name}.ref_logps.{key[:16]}.npz", key

    def _reference(self, trainer, dataset, paths):
        import numpy as np

        from xlda.training.config import ConfigError

        path, key = self._ref_cache(paths)
        if path.exists():
            z = np.load(path, allow_pickle=False)
            if str(z["key"]) == key and z["logps"].shape == (len(dataset), 2):
                trainer.log0(f"[xlda] DPO reference log-probs: {path} (cached)")
                return z["logps"]
        if trainer.resumed:
            raise ConfigError(
                f"DPO reference log-probs {path} are missing, and this run resumes from "
                f"{self.cfg.checkpoint.save} (trained weights, not the reference): restore that "
                "file or start over from --load with an empty --save")
        trainer.log0(f"[xlda] DPO reference log-probs: computing with the start model -> {path}")
        logps = self.sequence_logps(trainer, dataset)
        if trainer.rank == 0:
            from xlda.files import atomic_write

            buf = io.BytesIO()
            np.savez(buf, logps=logps, key=np.asarray(key))
            atomic_write(path, buf.getvalue())  # never a half-written cache under the real name
        return logps
