"""RLVR as a TrainTask: GRPO on rollouts of the policy being trained, scored by verifiable rewards.

Each generation round (every ``--num-iterations`` training iterations) takes the next
``global_batch_size / --num-generations`` prompts of a seeded per-epoch shuffle and samples
``--num-generations`` completions of each with the model itself (xlda.posttrain.rollout: KV
cache, temperature/top-p, stop at the chat template's end of turn). Each DP rank generates and
scores its own share of the rows; the completions and rewards are summed over the DP group, so
every rank holds the whole batch, computes the same group-relative advantages
(xlda.posttrain.grpo_loss) and the same token count for the loss's normaliser. The rows are then
ordinary samples (prompt + completion, loss on the completion tokens) that the trainer reads
through its usual DP-sharded stream.

The loss is GRPO with DAPO's clip-higher and token-level normalisation (``--loss-type dapo``:
the summed per-token loss over every completion token of the optimizer step, divided by their
number) or TRL's ``grpo`` (per-sequence means, averaged). Old log-probs for the importance ratio
are those of the generating weights: with ``--num-iterations 1`` the current ones (ratio 1,
TRL's shortcut), otherwise scored once per round. With ``--beta > 0`` the reference log-probs
are scored once per round with the start weights, kept as a copy beside the model (one model
in memory, its reference weights swapped in for that pass).

Reproducible: a round's prompts and its sampling uniforms are functions of (seed, round, row),
so a resumed run regenerates what the uninterrupted one would have; a round's rollouts in use
(``--num-iterations > 1``) are kept in the checkpoint.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from xlda.posttrain.start import ChatTask, pad_id, read_records_of, renderer, start_checkpoint
from xlda.training.lm_task import lm_collator
from xlda.training.task import BaseTask, TaskData

# (name, what it averages): reported per micro-batch as (sum, count)
METRICS = ("grpo loss", "reward", "completion_length", "kl", "clip_ratio_low",
           "clip_ratio_high", "clip_ratio_region")


class RolloutDataset(torch.utils.data.Dataset):
    """The current round's rows (a global batch): sample ``i`` is row ``i % len``."""

    languages = ("rlvr",)

    def __init__(self, size: int):
        self.size = size
        self.samples = None  # name -> tensor [size, ...]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        if self.samples is None:
            raise RuntimeError("RLVR: a sample was read before its rollout round was generated")
        return {k: v[i % self.size] for k, v in self.samples.items()}


def end_of_turn_ids(r) -> list:
    """The tokens a completion stops at: the template's end-of-turn marker and the eos token."""
    from xlda.data.tokenizer import END_OF_TURN_TOKENS

    vocab = r.tok.get_vocab()
    ids = [vocab[m] for m in END_OF_TURN_TOKENS if m in r.template and m in vocab]
    if r.tok.eos_token_id is not None:
        ids.append(int(r.tok.eos_token_id))
    if not ids:
        raise ValueError(f"the chat template ({r.source}) has no end-of-turn token the tokenizer "
                         f"holds ({', '.join(END_OF_TURN_TOKENS)}) and the tokenizer has no "
                         "eos_token: a completion could never stop")
    return sorted(set(ids))


def build_rows(prompts: list, completions: list, S: int, pad: int) -> dict:
    """Rows of prompt + completion as CONTRACTS samples ``[N, S]``: inputs ``ids[:-1]``, labels
    ``ids[1:]``, the loss on the labels that are completion tokens, padding its own document:
    evaluation's scored sequences (xlda.evaluate.scorer.SequenceDataset) with the completion as
    the scored continuation."""
    from xlda.evaluate.scorer import SequenceDataset
    from xlda.training.batches import collate

    items = []
    for i, (p, c) in enumerate(zip(prompts, completions)):
        if len(p) + len(c) - 1 > S:
            raise ValueError(f"row {i}: prompt {len(p)} + completion {len(c)} tokens exceed "
                             f"--seq-length {S} + 1")
        items.append((list(p) + list(c), len(c)))
    ds = SequenceDataset(items, S, pad)
    rows = collate([ds[i] for i in range(len(ds))])
    rows.pop("last")  # (where a greedy step reads: not a training row's)
    return rows


def _swap(params: list, other: list) -> None:
    """Exchange the values of two lists of same-shaped tensors in place, one tensor-sized
    temporary at a time (no second copy of the model)."""
    with torch.no_grad():
        for q, r in zip(params, other):
            tmp = q.detach().clone()
            q.copy_(r)
            r.copy_(tmp)


class RLVRTask(ChatTask, BaseTask):
    loss_name = METRICS[0]
    log_formats = {"reward": "reward {:.3f}", "completion_length": "len {:.1f}",
                   "kl": "kl {:.4f}", "clip_ratio_region": "clipped {:.3f}",
                   "rollout_s": "rollout {:.2f} s", "train_s": "train {:.2f} s"}

    def __init__(self):
        self.round = None  # the generation round the rollouts belong to
        self.norm = 1.0  # the loss's denominator: completion tokens (dapo) or rows (grpo)
        self._epochs: dict = {}

    # -- data ----------------------------------------------------------------------------------
    def build_data(self, cfg, log) -> TaskData:
        from xlda.posttrain.rlvr_data import read_prompts
        from xlda.posttrain.rlvr_rewards import RewardSet

        self.cfg, p = cfg, cfg.posttrain
        self.log = log
        self.renderer = r = renderer(cfg)
        self.chat_template = r.template
        self.pad = pad_id(r)
        self.stop_ids = end_of_turn_ids(r)
        self.rewards = RewardSet(list(p.reward_funcs), p.reward_weights)
        S, T = cfg.data.seq_length, p.max_completion_length
        log(f"[xlda] RLVR chat template: {r.source}; stops at {self.stop_ids}; rewards "
            f"{', '.join(self.rewards.names)}; {p.num_generations} generations per prompt, "
            f"{cfg.training.global_batch_size // p.num_generations} prompts per round")

        def prompts(paths, what):
            got, bad = read_records_of(paths, lambda f, b: read_prompts(f, r, S + 1 - T, b),
                                       p.strict, log, f"RLVR {what}", "prompts")
            if not got:
                raise ValueError(f"RLVR {what}: no usable prompt in {', '.join(paths)} "
                                 f"({bad.summary()})")
            return got, bad

        self.prompts, self.bad_records = prompts(p.data_path, "train")
        self.valid_prompts = prompts(p.valid_data_path, "valid")[0] if p.valid_data_path else None
        if cfg.data.num_workers:
            # the rows change every round: loader workers would hold a stale copy
            log(f"[xlda] RLVR: --num-workers {cfg.data.num_workers} -> 0 (rollouts are made "
                "in the main process)")
            cfg.data.num_workers = 0
        self.rollouts = RolloutDataset(cfg.training.global_batch_size)
        return TaskData(self.rollouts, lm_collator(cfg, 1), RolloutDataset.languages,
                        vocab_size=len(r.tok))


    def metric_names(self, training: bool) -> tuple:
        return METRICS

    # -- set-up --------------------------------------------------------------------------------
    def ready(self, trainer) -> None:
        from xlda.posttrain.rollout import Generator

        self.trainer = trainer
        self.generator = Generator(trainer, len(self.renderer.tok), self.pad, self.stop_ids)
        # megatron-core divides each micro-batch's loss by the micro-batch count and DDP
        # averages over DP: this factor turns a micro-batch's summed loss into its share of
        # (sum over the step) / norm
        self.scale = trainer.num_microbatches * trainer.dp_size
        self.ref_weights = self._reference_weights(trainer) if self.cfg.posttrain.beta > 0 else None

    def _params(self, trainer) -> list:
        return [q for c in trainer.model_chunks for q in c.parameters()]

    def _reference_weights(self, trainer) -> list:
        """A copy of the start weights (the KL reference). On resume the model holds trained
        weights: the start checkpoint is read into it, copied, and the trained ones put back."""
        params = self._params(trainer)
        if not trainer.resumed:
            return [q.detach().clone() for q in params]
        from xlda.training.checkpointing import load_checkpoint
        from xlda.training.config import ConfigError

        start = start_checkpoint(self.cfg)
        if not start:
            raise ConfigError("--beta > 0 resumes from --save but the KL reference (the start "
                              "model) is unknown: pass --pretrained-checkpoint START")
        ref = [q.detach().clone() for q in params]  # the trained weights, for now
        load_checkpoint(start, trainer.model_chunks, None, None, run_config=self.cfg,
                        load_optimizer=False, required=True,
                        verify=self.cfg.checkpoint.verify_checkpoint)
        _swap(params, ref)  # the model trained again, ref the start weights
        trainer.log0(f"[xlda] RLVR KL reference: the start weights of {start}")
        return ref

    # -- rollouts ------------------------------------------------------------------------------
    def _prompt(self, q: int):
        """The q-th prompt of the stream: epoch q // N, in that epoch's seeded shuffle."""
        n = len(self.prompts)
        e = q // n
        if e not in self._epochs:
            self._epochs = {e: np.random.default_rng([self.cfg.training.seed, e]).permutation(n)}
        return self.prompts[int(self._epochs[e][q % n])]

    def _score(self, prompts: list, completions: list) -> torch.Tensor:
        """``[n, 1 + functions]``: the weighted reward (NaN: unscorable) and each function's."""
        out = torch.zeros(len(prompts), 1 + len(self.rewards.names), dtype=torch.float64)
        tok = self.renderer.tok
        for i, (pr, c) in enumerate(zip(prompts, completions)):
            text = tok.decode(c, skip_special_tokens=True)
            total, each = self.rewards.score(pr.record, text)
            out[i, 0] = total
            out[i, 1:] = torch.tensor([math.nan if v is None else v for v in each])
        return out

    def _generate_shard(self, rows: int, prompt_of, key_of, params):
        """This DP rank's share of ``rows`` rows, generated and scored, summed over the world
        into (completion ids [rows, T], rewards [rows, 1 + functions])."""
        tr, T = self.trainer, params.max_new_tokens
        per = -(-rows // tr.dp_size)
        mine = range(tr.dp_rank * per, min(rows, (tr.dp_rank + 1) * per))
        prompts = [prompt_of(i) for i in mine]
        mb = self.cfg.posttrain.rollout_micro_batch_size or max(1, len(prompts))
        comps = self.generator.generate([pr.ids for pr in prompts], [key_of(i) for i in mine],
                                        params, mb)
        from megatron.core import parallel_state as ps

        ids = torch.zeros(rows, T, dtype=torch.int64)  # +1 below: 0 means "no token"
        rewards = torch.zeros(rows, 1 + len(self.rewards.names), dtype=torch.float64)
        # Filled once per model replica (its TP/PP rank 0), then summed over the whole world: a
        # reward with a timeout (math-verify) or any nondeterminism cannot give two TP ranks of
        # one replica different advantages (their copies of the weights would drift apart).
        if len(mine) and ps.get_tensor_model_parallel_rank() == 0 and \
                ps.get_pipeline_model_parallel_rank() == 0:
            for i, c in zip(mine, comps):
                ids[i, :len(c)] = torch.as_tensor(c, dtype=torch.int64) + 1
            rewards[mine.start:mine.stop] = self._score(prompts, comps)
        ids = self.trainer._all_reduce(ids.view(-1)).view(rows, T)
        rewards = self.trainer._all_reduce(rewards.view(-1)).view(rows, -1)
        completions = [[int(t) - 1 for t in row if t > 0] for row in ids.tolist()]
        return completions, rewards

    def before_step(self, trainer) -> dict:
        p = self.cfg.posttrain
        rnd = trainer.iteration // p.num_iterations
        if self.round == rnd and self.rollouts.samples is not None:
            return {"rollout_s": 0.0}  # --num-iterations: this round's rows again
        t0 = time.perf_counter()
        stats = self._rollout(rnd)
        return {"rollout_s": time.perf_counter() - t0, **stats}

    def _rollout(self, rnd: int) -> dict:
        from xlda.posttrain.grpo_loss import group_advantages
        from xlda.posttrain.rollout import SamplingParams

        cfg, p, tr = self.cfg, self.cfg.posttrain, self.trainer
        GB, G = cfg.training.global_batch_size, p.num_generations
        P = GB // G
        params = SamplingParams(p.max_completion_length, p.temperature, p.top_p,
                                cfg.training.seed)
        prompt_of = lambda i: self._prompt(rnd * P + i // G)  # noqa: E731
        n0 = self.generator.tokens_generated
        t0 = time.perf_counter()
        completions, rewards = self._generate_shard(GB, prompt_of, lambda i: rnd * GB + i, params)
        gen_s = time.perf_counter() - t0
        prompts = [prompt_of(i).ids for i in range(GB)]
        adv, zero_std = group_advantages(rewards[:, 0], G, p.scale_rewards)
        rows = build_rows(prompts, completions, cfg.data.seq_length, self.pad)
        if p.dynamic_sampling:  # DAPO: groups whose rewards are all equal teach nothing
            rows["loss_mask"][zero_std] = 0.0
        lengths = torch.tensor([len(c) for c in completions], dtype=torch.float64)
        finite = torch.isfinite(rewards[:, 0])
        rows["advantage"] = adv.float()
        rows["reward"] = torch.where(finite, rewards[:, 0], torch.zeros_like(rewards[:, 0])).float()
        rows["scored"] = finite.float()
        rows["completion_length"] = lengths.float()
        S = cfg.data.seq_length
        rows["old_logps"] = torch.zeros(GB, S)
        rows["ref_logps"] = torch.zeros(GB, S)
        self.rollouts.samples, self.round = rows, rnd
        mask = rows["loss_mask"]
        self.norm = float(mask.sum()) if p.loss_type == "dapo" else float(GB)
        self.norm = max(self.norm, 1.0)
        if p.num_iterations > 1:  # the generating weights' log-probs, for the ratio later
            rows["old_logps"] = self._token_logps(tr)
        if self.ref_weights is not None:
            rows["ref_logps"] = self._with_reference(tr, lambda: self._token_logps(tr))
        stops = torch.tensor([bool(c) and c[-1] in self.stop_ids for c in completions])
        out = {"rollout_gen_s": gen_s,
               "rollout_tokens_per_s": (self.generator.tokens_generated - n0) * tr.dp_size / gen_s,
               "frac_reward_zero_std": float(zero_std.float().mean()),
               "truncated_ratio": float((~stops).float().mean()),
               "reward_std": float(rewards[finite, 0].std()) if int(finite.sum()) > 1 else 0.0}
        out.update(self._function_means(rewards))
        if tr.iteration % cfg.logging.log_interval == 0 or tr.iteration == 0:
            tok = self.renderer.tok
            tr.log0(f"[xlda] RLVR round {rnd} sample: {tok.decode(prompts[0])!r} -> "
                    f"{tok.decode(completions[0])!r} (reward {float(rewards[0, 0]):.3f})")
        return out

    def _function_means(self, rewards: torch.Tensor) -> dict:
        """``rewards/<function>``: each reward function's mean where it applied (not None)."""
        out = {}
        for k, name in enumerate(self.rewards.names):
            col = rewards[:, 1 + k]
            ok = ~torch.isnan(col)
            if bool(ok.any()):
                out[f"rewards/{name}"] = float(col[ok].mean())
        return out

    def _token_logps(self, tr) -> torch.Tensor:
        """Per-token log-probs ``[GB, S]`` of the rows' labels under the current weights."""
        got = tr.forward_only(self.rollouts, lambda b, out: (b["index"], -out.float()),
                              width=self.cfg.data.seq_length)
        return torch.from_numpy(got).float()

    def _with_reference(self, tr, fn):
        params = self._params(tr)
        _swap(params, self.ref_weights)  # the reference in the model, the trained weights aside
        try:
            return fn()
        finally:
            _swap(params, self.ref_weights)

    # -- the loss ------------------------------------------------------------------------------
    def loss(self, batch, output_tensor, training: bool):
        from xlda.posttrain.grpo_loss import grpo_token_loss

        p = self.cfg.posttrain
        logps = -output_tensor.float()
        mask = batch["loss_mask"].float()
        d = grpo_token_loss(logps, batch["old_logps"].float() if p.num_iterations > 1 else None,
                            batch["advantage"].float(), mask, p.epsilon, p.epsilon_high, p.beta,
                            batch["ref_logps"].float() if p.beta > 0 else None)
        per_token = d["per_token_loss"] * mask
        tokens = mask.sum()
        rows = torch.ones_like(batch["reward"]).sum()
        if p.loss_type == "dapo":
            total, count = per_token.sum(), tokens
        else:  # grpo: each sequence's token mean, averaged over every row (an empty one: 0)
            total, count = (per_token.sum(-1) / mask.sum(-1).clamp(min=1.0)).sum(), rows
        stat = lambda x: torch.stack([(x.float() * mask).sum().detach(), tokens])  # noqa: E731
        low, high = d["low_clipped"], d["high_clipped"]
        report = {
            self.loss_name: torch.stack([total.detach(), count]),
            "reward": torch.stack([(batch["reward"] * batch["scored"]).sum(), batch["scored"].sum()]),
            "completion_length": torch.stack([batch["completion_length"].sum(), rows]),
            "clip_ratio_low": stat(low), "clip_ratio_high": stat(high),
            "clip_ratio_region": stat(low | high)}
        if p.beta > 0:
            report["kl"] = stat(d["kl"])
        loss = total * (self.scale / self.norm)
        return loss, torch.ones((), dtype=torch.int, device=loss.device), report

    # -- evaluation and state ------------------------------------------------------------------
    def evaluate(self, trainer) -> dict:
        """Greedy completions of the --valid-data-path prompts: their mean rewards."""
        from xlda.posttrain.rollout import SamplingParams

        if not self.valid_prompts:
            return {}
        vp = self.valid_prompts
        params = SamplingParams(self.cfg.posttrain.max_completion_length, 0.0, 1.0, 0)
        completions, rewards = self._generate_shard(len(vp), lambda i: vp[i], lambda i: i, params)
        out = {}
        ok = torch.isfinite(rewards[:, 0])
        out["reward"] = float(rewards[ok, 0].mean()) if bool(ok.any()) else math.nan
        out.update(self._function_means(rewards))
        out["completion_length"] = float(np.mean([len(c) for c in completions]))
        return out

    def state_dict(self) -> dict:
        if self.cfg.posttrain.num_iterations == 1 or self.rollouts.samples is None:
            return {}  # a round is regenerated exactly from (seed, round) on resume
        return {"round": self.round, "norm": self.norm, "samples": dict(self.rollouts.samples)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("samples") is not None:
            self.rollouts.samples = dict(state["samples"])
            self.round, self.norm = int(state["round"]), float(state["norm"])
