"""What SFT and DPO share: where a post-training run starts, the chat renderer and its padding.

Start and resume: the starting model is ``--pretrained-checkpoint`` (Megatron-LM's flag), or
``--load`` when that is not the ``--save`` dir; it is read weights only (fresh optimizer,
iteration 0, as --finetune). When ``--save`` already holds a checkpoint the run resumes from it
instead (model, optimizer, scheduler, RNG and data position), so re-running the same command
(or a requeued launch.sh job, which passes --load $CKPT --save $CKPT) continues bit-exactly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from xlda.training.config import ConfigError
from xlda.training.task import Start


def start_checkpoint(cfg) -> Optional[str]:
    """The starting model: --pretrained-checkpoint, else --load when it is not the --save dir
    (launch.sh passes --load $CKPT --save $CKPT for requeues); None: random weights."""
    ck, p = cfg.checkpoint, cfg.posttrain
    if p.pretrained_checkpoint:
        return p.pretrained_checkpoint
    if ck.load and not (ck.save and Path(ck.load).resolve() == Path(ck.save).resolve()):
        return ck.load
    return None


def post_start(cfg) -> Start:
    from xlda.checkpoint_layout import read_latest

    save = cfg.checkpoint.save
    if save and read_latest(save) is not None:
        return Start(save)  # this run's own checkpoint: resume everything
    start = start_checkpoint(cfg)
    if not start:
        return Start(None, note="no --load/--pretrained-checkpoint: post-training random weights")
    if read_latest(start) is None:
        raise ConfigError(f"the starting model {start} holds no checkpoint "
                          "(latest_checkpointed_iteration.txt): pass a pretraining --save dir")
    return Start(start, weights_only=True)


def renderer(cfg):
    from xlda.posttrain.chat import ChatRenderer

    return ChatRenderer(cfg.data.tokenizer_model, cfg.posttrain.chat_template)


def pad_id(renderer) -> int:
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


def read_records_of(paths, tokenize, strict: bool, log, what: str, noun: str):
    """``tokenize(paths, bad) -> items`` with the bad records counted (or raised, ``strict``),
    said in one line: ``[xlda] <what>: <n> <noun>, bad records: ...``."""
    from xlda.posttrain.records import BadRecords

    bad = BadRecords(strict)
    items = tokenize(paths, bad)
    log(f"[xlda] {what}: {len(items)} {noun}, bad records: {bad.summary()}")
    return items, bad


def chat_template_files(template: str) -> dict:
    """The template the model is trained on, beside its checkpoints, for the HF export
    (tools/checkpoint/convert.py)."""
    from xlda.checkpoint_conversion.convert import CHAT_TEMPLATE_FILE

    return {CHAT_TEMPLATE_FILE: template}


class ChatTask:
    """What every post-training task shares: its start (``post_start``: the start model, or this
    run's own checkpoint) and the chat template it trains with, kept beside its checkpoints
    (``chat_template`` is set by the task's build_data)."""

    chat_template: str = ""

    def start(self, cfg):
        return post_start(cfg)

    def run_files(self) -> dict:
        return chat_template_files(self.chat_template)
