"""Post-training trainers: xlda.training.loop.Trainer with its data and checkpoint start swapped
(the schedules, DDP, optimizer, checkpoints, signals and metrics are pretraining's own).

Start and resume: ``--load`` is the starting model, read weights only (fresh optimizer,
iteration 0, as Megatron-LM's --finetune); when ``--save`` already holds a checkpoint the run
resumes from it instead (model, optimizer, scheduler, RNG and data position), so re-running the
same command after a stop continues bit-exactly.
"""
from __future__ import annotations

from xlda.training.loop import Trainer


class PostTrainer(Trainer):
    def _renderer(self):
        from xlda.posttrain.chat import ChatRenderer

        p = self.cfg.posttrain
        return ChatRenderer(self.cfg.data.tokenizer_model, p.chat_template)

    def _set_vocab(self, renderer) -> None:
        self.cfg.model.vocab_size = len(renderer.tok)

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

    def _load(self):
        from xlda.training import checkpointing

        ck = self.cfg.checkpoint
        before = (ck.load, ck.finetune)
        self.resumed = bool(ck.save) and checkpointing.read_latest(ck.save) is not None
        try:
            if self.resumed:
                ck.load, ck.finetune = ck.save, False
            elif ck.load:
                ck.finetune = True
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
