"""The post-training run config: RunConfig (model, parallel, optimizer, scheduler, checkpoint,
logging, training sections as pretraining has them) plus a ``posttrain`` section."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from xlda.training.config import ConfigError, RunConfig

STAGES = ("sft", "dpo", "rlvr")
SCALE_REWARDS = ("group", "batch", "none")
RLVR_LOSSES = ("dapo", "grpo")


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
    # RLVR (GRPO); names follow TRL's GRPOConfig
    num_generations: int = 8  # completions per prompt (a group)
    max_completion_length: int = 256  # tokens generated per completion at most
    temperature: float = 1.0  # rollout sampling (0: greedy)
    top_p: float = 1.0
    reward_funcs: list = field(default_factory=lambda: ["accuracy"])  # names or module:function
    reward_weights: Optional[list] = None  # one per reward function; None: all 1
    beta: float = 0.0  # KL to the start model (0: no reference pass)
    epsilon: float = 0.2  # the ratio's lower clip: 1 - epsilon
    epsilon_high: float = 0.28  # the upper clip 1 + epsilon_high (DAPO's clip-higher)
    loss_type: str = "dapo"  # dapo: token-level normalisation; grpo: per-sequence means
    scale_rewards: str = "group"  # advantages divided by the group's std, the batch's, or not
    dynamic_sampling: bool = False  # groups with equal rewards carry no loss (DAPO)
    num_iterations: int = 1  # optimizer steps per generation round (TRL's mu)
    # rows decoded together; None: all of a DP rank's rows of a round
    rollout_micro_batch_size: Optional[int] = None


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
        if p.stage == "rlvr":
            self._validate_rlvr()

    def _validate_rlvr(self) -> None:
        p, t, m = self.posttrain, self.training, self.model
        if p.num_generations < 2:
            raise ConfigError(f"--num-generations must be >= 2 (a group needs two completions to "
                              f"compare), got {p.num_generations}")
        if t.global_batch_size % p.num_generations:
            raise ConfigError(f"--global-batch-size {t.global_batch_size} is not a multiple of "
                              f"--num-generations {p.num_generations} (a step trains whole "
                              "groups: prompts per step = global batch / generations)")
        if not 1 <= p.max_completion_length < self.data.seq_length:
            raise ConfigError(f"--max-completion-length {p.max_completion_length} must be in "
                              f"[1, --seq-length {self.data.seq_length}) (prompt + completion "
                              "fill one row)")
        if not (math.isfinite(p.temperature) and p.temperature >= 0):
            raise ConfigError(f"--temperature must be >= 0 (0: greedy), got {p.temperature}")
        if not 0 < p.top_p <= 1:
            raise ConfigError(f"--top-p must be in (0, 1], got {p.top_p}")
        if not 0 <= p.epsilon < 1:
            raise ConfigError(f"--epsilon must be in [0, 1), got {p.epsilon}")
        if not (math.isfinite(p.epsilon_high) and p.epsilon_high >= 0):
            raise ConfigError(f"--epsilon-high must be >= 0, got {p.epsilon_high}")
        if not (math.isfinite(p.beta) and p.beta >= 0):
            raise ConfigError(f"--beta must be >= 0, got {p.beta}")
        if p.loss_type not in RLVR_LOSSES:
            raise ConfigError(f"--loss-type {p.loss_type!r}: expected one of {RLVR_LOSSES}")
        if p.scale_rewards not in SCALE_REWARDS:
            raise ConfigError(f"--scale-rewards {p.scale_rewards!r}: expected one of "
                              f"{SCALE_REWARDS}")
        if p.num_iterations < 1:
            raise ConfigError(f"--num-iterations must be >= 1, got {p.num_iterations}")
        if p.rollout_micro_batch_size is not None and p.rollout_micro_batch_size < 1:
            raise ConfigError(f"--rollout-micro-batch-size must be >= 1, got "
                              f"{p.rollout_micro_batch_size}")
        if not p.reward_funcs:
            raise ConfigError("--reward-funcs: give at least one reward function")
        if p.reward_weights is not None and len(p.reward_weights) != len(p.reward_funcs):
            raise ConfigError(f"--reward-weights has {len(p.reward_weights)} values for "
                              f"{len(p.reward_funcs)} --reward-funcs")
        if m.position_embedding_type != "rope":
            raise ConfigError(f"--position-embedding-type {m.position_embedding_type}: RLVR "
                              "decodes left-padded prompts, exact only with RoPE (relative "
                              "positions)")
        if m.mtp_num_layers and m.mtp_loss_scaling_factor > 0:
            raise ConfigError(f"--mtp-loss-scaling-factor {m.mtp_loss_scaling_factor} > 0: the "
                              "MTP head's auxiliary LM loss would train on every sampled "
                              "completion, negative advantages too; pass "
                              "--mtp-loss-scaling-factor 0 (rlvr_7b.yaml does)")
        if m.sequence_parallel or self.parallel.sequence_parallel:
            raise ConfigError("RLVR decodes one token per pass, which sequence parallelism "
                              "cannot split over TP ranks: drop --sequence-parallel")
