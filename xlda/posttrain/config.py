"""The post-training run config: RunConfig (model, parallel, optimizer, scheduler, checkpoint,
logging, training sections as pretraining has them) plus a ``posttrain`` section."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from xlda.training.config import ConfigError, RunConfig

STAGES = ("sft", "dpo")


@dataclass
class PostTrainSettings:
    stage: str = "sft"
    data_path: Optional[list] = None  # JSONL(.gz) files: messages (sft) / prompt,chosen,rejected (dpo)
    valid_data_path: Optional[list] = None  # held-out JSONL of the same format (eval)
    chat_template: Optional[str] = None  # a Jinja file; None: tokenizer_config.json's, else ChatML
    strict: bool = False  # the first bad record is an error (default: skip and count)
    dpo_beta: float = 0.1
    ref_cache_dir: Optional[str] = None  # DPO reference log-probs; None: next to the data
    pretrained_checkpoint: Optional[str] = None  # the start model (mcore); else --load
    hf_load: Optional[str] = None  # start from a HF folder (converted through the converter)


@dataclass
class PostRunConfig(RunConfig):
    posttrain: PostTrainSettings = field(default_factory=PostTrainSettings)

    SECTIONS = {**RunConfig.SECTIONS, "posttrain": PostTrainSettings}

    def _validate_data_source(self) -> None:
        p, m = self.posttrain, self.model
        if p.stage not in STAGES:
            raise ConfigError(f"posttrain stage {p.stage!r}: expected one of {STAGES}")
        if not p.data_path:
            raise ConfigError(f"no {p.stage} data: pass --data-path FILE.jsonl [...]")
        if not self.data.tokenizer_model:
            raise ConfigError("post-training renders chat text: pass --tokenizer-model "
                              "(a tokenizer.json or a folder with tokenizer.json)")
        import os

        for flag, paths in (("--data-path", p.data_path), ("--valid-data-path", p.valid_data_path or [])):
            for path in paths:
                if not os.path.isfile(path):
                    raise ConfigError(f"{flag} {path}: file not found")
        if not os.path.exists(self.data.tokenizer_model):
            raise ConfigError(f"--tokenizer-model {self.data.tokenizer_model}: no such file or "
                              "folder (a tokenizer.json, or a folder holding one)")
        if self.data.tokenizer_type not in (None, "HuggingFaceTokenizer"):
            raise ConfigError("post-training needs --tokenizer-type HuggingFaceTokenizer (chat "
                              "templates are rendered by transformers)")
        if m.attention_mask_type != "document":
            raise ConfigError(f"--xlda-mask {m.attention_mask_type}: post-training packs whole "
                              "conversations with the document mask; use --xlda-mask document")
        if not (math.isfinite(p.dpo_beta) and p.dpo_beta > 0):
            raise ConfigError(f"--dpo-beta must be > 0, got {p.dpo_beta}")
