"""SFT as a TrainTask: chat conversations packed into S-token samples, the LM loss on the
assistant tokens (the loss and evaluation are pretraining's)."""
from __future__ import annotations

from xlda.posttrain.start import ChatTask, pad_id, read_records_of, renderer
from xlda.training.lm_task import LMTask, lm_collator
from xlda.training.task import TaskData


class SFTTask(ChatTask, LMTask):
    def build_data(self, cfg, log) -> TaskData:
        from xlda.posttrain.sft_data import LANGUAGES, SFTDataset, tokenize_conversations

        p = cfg.posttrain
        r = renderer(cfg)
        self.chat_template = r.template
        S, pad = cfg.data.seq_length, pad_id(r)
        log(f"[xlda] SFT chat template: {r.source}")

        def dataset(paths, what):
            convs, bad = read_records_of(paths, lambda f, b: tokenize_conversations(f, r, S, b),
                                         p.strict, log, f"SFT {what}", "conversations")
            ds = SFTDataset(convs, S, pad, cfg.data.reset_position_ids)
            st = ds.stats()
            log(f"[xlda] SFT {what}: {st['samples']} packed samples of {S} tokens, fill "
                f"{st['fill']:.3f}, assistant (loss) tokens {st['assistant_tokens']}")
            return ds, bad

        train, self.bad_records = dataset(p.data_path, "train")
        valid = dataset(p.valid_data_path, "valid")[0] if p.valid_data_path else None
        self.languages = tuple(LANGUAGES)
        return TaskData(train, lm_collator(cfg, len(self.languages)), self.languages,
                        valid=valid, vocab_size=len(r.tok))

