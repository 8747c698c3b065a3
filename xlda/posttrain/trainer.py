"""Post-training trainers: xlda.training.loop.Trainer with its data and checkpoint start swapped
(the schedules, DDP, optimizer, checkpoints, signals and metrics are pretraining's own).

Start and resume: the starting model is ``--pretrained-checkpoint`` (Megatron-LM's flag), or
``--load`` when that is not the ``--save`` dir; it is read weights only (fresh optimizer,
iteration 0, as --finetune). When ``--save`` already holds a checkpoint the run resumes from it
instead (model, optimizer, scheduler, RNG and data position), so re-running the same command
(or a requeued launch.sh job, which passes --load $CKPT --save $CKPT) continues bit-exactly.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import torch

from xlda.training.loop import Trainer


class PostTrainer(Trainer):
    def _renderer(self):
        from xlda.posttrain.chat import ChatRenderer

        p = self.cfg.posttrain
        return ChatRenderer(self.cfg.data.tokenizer_model, p.chat_template)

    def _set_vocab(self, renderer) -> None:
        self.cfg.model.vocab_size = len(renderer.tok)
        self.chat_template = renderer.template

    def _write_run_config(self):
        super()._write_run_config()
        save = self.cfg.checkpoint.save
        if save and self.rank == 0:
            # the template the model is trained on, for the HF export (tools/checkpoint/convert.py)
            from xlda.checkpoint_conversion.convert import CHAT_TEMPLATE_FILE

            path = Path(save) / CHAT_TEMPLATE_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".tmp{os.getpid()}")
            tmp.write_text(self.chat_template)
            os.replace(tmp, path)

    def _pad_id(self, renderer) -> int:
        tok = renderer.tok
        for t in (tok.pad_token_id, tok.eos_token_id):
            if t is not None:
                return int(t)
        from xlda.data.tokenizer import EOD_CANDIDATES

        for cand in EOD_CANDIDATES:
            tid = tok.convert_tokens_to_ids(cand)
            if tid is not None and tid != tok.unk_token_id:
                return int(tid)
        return 0  # padding carries no loss and its own doc id: any id works

    def _stream(self, train, valid):
        from xlda.training.batches import TrainData

        cfg = self.cfg
        self.data = TrainData(train, None, micro_batch_size=cfg.training.micro_batch_size,
                              dp_rank=self.dp_rank, dp_size=self.dp_size, device=self.device,
                              num_workers=cfg.data.num_workers, collate_fn=self._collator())
        self.valid = valid

    def start_checkpoint(self):
        """The starting model: --pretrained-checkpoint, else --load when it is not the --save dir
        (launch.sh passes --load $CKPT --save $CKPT for requeues); None: random weights."""
        ck, p = self.cfg.checkpoint, self.cfg.posttrain
        if p.pretrained_checkpoint:
            return p.pretrained_checkpoint
        if ck.load and not (ck.save and Path(ck.load).resolve() == Path(ck.save).resolve()):
            return ck.load
        return None

    def _load(self):
        from xlda.training import checkpointing
        from xlda.training.config import ConfigError

        ck = self.cfg.checkpoint
        before = (ck.load, ck.finetune)
        self.resumed = bool(ck.save) and checkpointing.read_latest(ck.save) is not None
        start = self.start_checkpoint()
        if not self.resumed and start and checkpointing.read_latest(start) is None:
            raise ConfigError(f"the starting model {start} holds no checkpoint "
                              "(latest_checkpointed_iteration.txt): pass a pretraining --save dir")
        if not self.resumed and not start:
            self.log0("[xlda] no --load/--pretrained-checkpoint: post-training random weights")
        try:
            if self.resumed:
                ck.load, ck.finetune = ck.save, False
            else:
                ck.load, ck.finetune = start, True
            super()._load()
        finally:
            ck.load, ck.finetune = before


class SFTTrainer(PostTrainer):
    def _build_data(self):
        from xlda.posttrain.records import BadRecords
        from xlda.posttrain.sft_data import LANGUAGES, SFTDataset, tokenize_conversations

        cfg, p = self.cfg, self.cfg.posttrain
        r = self._renderer()
        self._set_vocab(r)
        S, pad = cfg.data.seq_length, self._pad_id(r)
        self.log0(f"[xlda] SFT chat template: {r.source}")

        def dataset(paths, what):
            bad = BadRecords(p.strict)
            convs = tokenize_conversations(paths, r, S, bad)
            self.log0(f"[xlda] SFT {what}: {len(convs)} conversations, bad records: "
                      f"{bad.summary()}")
            ds = SFTDataset(convs, S, pad, cfg.data.reset_position_ids)
            st = ds.stats()
            self.log0(f"[xlda] SFT {what}: {st['samples']} packed samples of {S} tokens, fill "
                      f"{st['fill']:.3f}, assistant (loss) tokens {st['assistant_tokens']}")
            return ds, bad

        train, self.bad_records = dataset(p.data_path, "train")
        valid = dataset(p.valid_data_path, "valid")[0] if p.valid_data_path else None
        self.languages = LANGUAGES
        self._stream(train, valid)


class DPOTrainer(PostTrainer):
    """Sigmoid DPO with reference log-probs precomputed by the frozen start model (one model in
    memory). Logs ``dpo loss``, reward_margin, reward_accuracy, reward_chosen and
    reward_rejected per iteration; evaluation reports the same on --valid-data-path pairs."""

    rows_per_sample = 2
    loss_name = "dpo loss"

    def _collator(self):
        from xlda.posttrain.dpo_data import PairCollator

        m = self.cfg.model
        return PairCollator(m.attention_mask_type, 1,
                            thd_layout=m.attention_backend in ("thd", "te"))

    def _build_data(self):
        from xlda.posttrain.dpo_data import PairDataset, tokenize_pairs
        from xlda.posttrain.records import BadRecords

        cfg, p = self.cfg, self.cfg.posttrain
        r = self._renderer()
        self._set_vocab(r)
        self.renderer = r
        S, pad = cfg.data.seq_length, self._pad_id(r)
        self.log0(f"[xlda] DPO chat template: {r.source}; beta {p.dpo_beta}")

        def dataset(paths, what):
            bad = BadRecords(p.strict)
            pairs = tokenize_pairs(paths, r, S, bad)
            self.log0(f"[xlda] DPO {what}: {len(pairs)} pairs, bad records: {bad.summary()}")
            return PairDataset(pairs, S, pad), bad

        self.pairs, self.bad_records = dataset(p.data_path, "train")
        self.valid_pairs = dataset(p.valid_data_path, "valid")[0] if p.valid_data_path else None
        self.languages = self.pairs.languages
        self._collect = None
        self._stream(self.pairs, None)

    def setup(self):
        super().setup()
        p = self.cfg.posttrain
        self.pairs.ref_logps = self._reference(self.pairs, p.data_path)
        if self.valid_pairs is not None:
            self.valid_pairs.ref_logps = self._reference(self.valid_pairs, p.valid_data_path)
        return self

    # -- reference log-probs -------------------------------------------------------------------
    def _start_identity(self) -> str:
        import hashlib

        from xlda.training import checkpointing

        load = self.start_checkpoint()
        if not load:
            return f"init seed {self.cfg.training.seed} " + repr(sorted(
                self.cfg.to_dict()["model"].items())) + repr(self.cfg.to_dict()["parallel"])
        it = checkpointing.read_latest(load)
        files = sorted(p for p in checkpointing.iter_dir(load, it).rglob("*") if p.is_file()
                       and p.stat().st_size < (1 << 20))  # the small files: manifest, state
        h = hashlib.sha256(f"{Path(load).resolve()} {it}".encode())
        for f in files:
            h.update(f.name.encode() + f.read_bytes())
        return h.hexdigest()

    def _ref_cache(self, paths) -> tuple:
        import hashlib

        from xlda.data.tokenizer import _sha256

        h = hashlib.sha256()
        for f in paths:
            h.update(_sha256(Path(f)).encode())
        tok = Path(self.cfg.data.tokenizer_model)
        h.update(_sha256(tok / "tokenizer.json" if tok.is_dir() else tok).encode())
        h.update(self.renderer.template.encode())
        h.update(f"S={self.cfg.data.seq_length}".encode())
        h.update(self._start_identity().encode())
        key = h.hexdigest()
        where = Path(self.cfg.posttrain.ref_cache_dir or Path(paths[0]).parent)
        return where / f"{Path(paths[0]).name}.ref_logps.{key[:16]}.npz", key

    def _reference(self, dataset, paths):
        import numpy as np

        from xlda.training.config import ConfigError

        path, key = self._ref_cache(paths)
        if path.exists():
            z = np.load(path, allow_pickle=False)
            if str(z["key"]) == key and z["logps"].shape == (len(dataset), 2):
                self.log0(f"[xlda] DPO reference log-probs: {path} (cached)")
                return z["logps"]
        if self.resumed:
            raise ConfigError(
                f"DPO reference log-probs {path} are missing, and this run resumes from "
                f"{self.cfg.checkpoint.save} (trained weights, not the reference): restore that "
                "file or start over from --load with an empty --save")
        self.log0(f"[xlda] DPO reference log-probs: computing with the start model -> {path}")
        logps = self.sequence_logps(dataset)
        if self.rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".tmp{os.getpid()}")
            with open(tmp, "wb") as f:
                np.savez(f, logps=logps, key=np.asarray(key))
            os.replace(tmp, path)  # never a half-written cache under the real name
        return logps

    def sequence_logps(self, dataset):
        """Summed response log-probs ``[N, 2]`` (chosen, rejected) of every pair under the
        current weights, forward only, DP-sharded and gathered to every rank."""
        import math

        from xlda.training.batches import DataStream

        mbs = self.cfg.training.micro_batch_size
        steps = math.ceil(len(dataset) / (mbs * self.dp_size))
        stream = DataStream(dataset, mbs, self.dp_rank, self.dp_size, device=self.device,
                            collate_fn=self._collator())
        for c in self.model_chunks:
            c.eval()
        self._collect = []
        try:
            with torch.no_grad():
                self._run_schedule(stream, forward_only=True, num_microbatches=steps)
            got = self._collect
        finally:
            self._collect = None
            stream.close()
            for c in self.model_chunks:
                c.train()
        full = torch.zeros(len(dataset), 2, dtype=torch.float64)
        cnt = torch.zeros(len(dataset), dtype=torch.float64)
        for idx, lp in got:
            full[idx] = lp
            cnt[idx] = 1.0
        if self.world > 1:
            dev = self.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
            both = torch.cat([full, cnt[:, None]], 1).to(dev)
            torch.distributed.all_reduce(both)
            both = both.cpu()
            full, cnt = both[:, :2], both[:, 2]
        assert bool((cnt > 0).all()), "every pair is scored by some last-stage rank"
        return (full / cnt[:, None]).numpy()

    def pair_metrics(self, dataset) -> dict:
        """DPO loss, reward accuracy and margin of ``dataset`` under the current weights."""
        from xlda.posttrain.dpo_loss import dpo_sigmoid

        lp = torch.from_numpy(self.sequence_logps(dataset))
        ref = torch.from_numpy(dataset.ref_logps)
        d = dpo_sigmoid(lp[:, 0], lp[:, 1], ref[:, 0], ref[:, 1], self.cfg.posttrain.dpo_beta)
        return {"dpo loss": float(d["losses"].mean()), "reward_accuracy": float(d["accuracies"].mean()),
                "reward_margin": float(d["margins"].mean())}

    def evaluate(self) -> dict:
        return self.pair_metrics(self.valid_pairs) if self.valid_pairs is not None else {}

    # -- the step ------------------------------------------------------------------------------
    def _forward_step(self, counters, per_lang, data_iterator, model):
        batch = next(data_iterator)
        ref, index = batch.pop("ref_logps"), batch.pop("index")
        out, _ = super()._forward_step(counters, False, iter([batch]), model)
        return out, partial(self._pair_loss, batch["loss_mask"], ref, index)

    def _pair_loss(self, loss_mask, ref, index, output_tensor):
        from xlda.posttrain.dpo_loss import dpo_sigmoid

        logps = -(output_tensor.float() * loss_mask.float()).sum(-1).view(-1, 2)
        n = logps.shape[0]
        if self._collect is not None:  # scoring pass: keep the log-probs, no loss
            self._collect.append((index.cpu(), logps.detach().double().cpu()))
            zero = logps.sum() * 0
            return zero, torch.ones((), dtype=torch.int, device=logps.device), \
                {"lm loss": torch.zeros(2, device=logps.device)}
        ref = ref.to(logps).view(-1, 2)
        d = dpo_sigmoid(logps[:, 0], logps[:, 1], ref[:, 0], ref[:, 1], self.cfg.posttrain.dpo_beta)
        loss_sum = d["losses"].sum()
        report = {"lm loss": torch.stack([loss_sum.detach(), loss_sum.new_tensor(float(n))]),
                  "dpo": torch.stack([d[k].sum() for k in (
                      "margins", "accuracies", "chosen_rewards", "rejected_rewards")])}
        return loss_sum, torch.tensor(n, dtype=torch.int, device=logps.device), report

    def _run_schedule(self, data_iterator, forward_only, counters=None, num_microbatches=None):
        self._reports = super()._run_schedule(data_iterator, forward_only, counters,
                                              num_microbatches)
        return self._reports

    def train_step(self) -> dict:
        out = super().train_step()
        v = torch.zeros(5, dtype=torch.float64)
        for r in self._reports:
            v[:4] += r["dpo"].double().cpu()
            v[4] += float(r["lm loss"][1])
        if self.world > 1:
            dev = self.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
            v = v.to(dev)
            torch.distributed.all_reduce(v)  # TP copies count in both sums: the ratios stand
            v = v.cpu()
        n = max(float(v[4]), 1.0)
        out["metrics"] = {"reward_margin": float(v[0]) / n, "reward_accuracy": float(v[1]) / n,
                          "reward_chosen": float(v[2]) / n, "reward_rejected": float(v[3]) / n}
        return out
