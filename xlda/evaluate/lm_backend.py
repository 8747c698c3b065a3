"""lm-eval's model backend for xlda's Megatron checkpoints: ``--model xlda-megatron``.

``XldaMegatronLM`` is an lm-eval ``TemplateLM`` (lm-eval does the prompting, the
context/continuation split and the metrics; this class scores token ids) over
``xlda.evaluate.scorer.Scorer``: the project's own megatron-core model at any TP/PP/DP, read
straight from a ``--save`` directory, no conversion. Its requests and numbers follow lm-eval's
``hf`` backend (same tokenization, the same left truncation at the model's length, the same
prefix token for an empty context, stop strings and the EOD for generation), so a checkpoint
and its HF export give the same log-likelihoods (tests/evaluate/test_parity.py).

Under torchrun every rank runs lm-eval on every request (``rank``/``world_size`` stay 0/1 to
lm-eval); the trainer splits each pass over TP/PP/DP and hands every rank all the results.
Only rank 0 writes files (xlda.evaluate.cli).
"""
from __future__ import annotations

from typing import Optional

from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--model_args {name}={value!r}: expected an integer") from None


@register_model("xlda-megatron")
class XldaMegatronLM(TemplateLM):
    """model_args: ``load=DIR`` (a --save dir), ``tensor_parallel_size``,
    ``pipeline_parallel_size``, ``tokenizer_model`` (when the checkpoint's path does not exist
    here), ``max_gen_toks`` (256); lm-eval's ``--batch_size`` is the micro-batch size."""

    def __init__(self, load: Optional[str] = None, tensor_parallel_size=1, pipeline_parallel_size=1,
                 tokenizer_model: Optional[str] = None, max_gen_toks=256, batch_size=8,
                 session=None, **ignored):
        super().__init__()
        from xlda.evaluate.session import open_session

        if session is None and not load:
            raise ValueError("xlda-megatron needs --model_args load=DIR (a --save directory)")
        if batch_size in (None, "auto") or str(batch_size).startswith("auto"):
            batch_size = 8  # no probing: the micro-batch is what the memory plan says
        self.session = session or open_session(
            load, tensor_parallel=_int(tensor_parallel_size, "tensor_parallel_size"),
            pipeline_parallel=_int(pipeline_parallel_size, "pipeline_parallel_size"),
            micro_batch_size=_int(batch_size, "batch_size"), tokenizer_model=tokenizer_model,
            print_fn=lambda *a, **k: None)
        self.scorer = self.session.scorer
        self.tok = self.session.tokenizer
        self.max_gen_toks = _int(max_gen_toks, "max_gen_toks")

    # -- what lm-eval reads ------------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return int(self.tok.eod)

    @property
    def prefix_token_id(self) -> int:
        from xlda.data.tokenizer import BOS_CANDIDATES

        for t in BOS_CANDIDATES:
            tid = self.tok.token_to_id(t)
            if tid is not None:
                return int(tid)
        return self.eot_token_id

    @property
    def max_length(self) -> int:
        return self.scorer.max_length

    @property
    def tokenizer_name(self) -> str:
        return str(self.session.config.data.tokenizer_model)

    def tok_encode(self, string: str, add_special_tokens=None, **kwargs) -> list[int]:
        return self.tok.tokenize(string)

    def tok_decode(self, tokens, skip_special_tokens: bool = True) -> str:
        return self.tok.detokenize(tokens, skip_special=skip_special_tokens)

    # -- scoring -------------------------------------------------------------------------------
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
        pairs = [(ctx, cont) for _, ctx, cont in requests]
        out = self.scorer.loglikelihood(pairs)
        for (key, _, _), res in zip(requests, out):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, res)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Whole-text log-likelihood in disjoint windows of max_length (lm-eval's rolling
        windows, each conditioned on the previous window's tail, as its hf backend)."""
        from lm_eval import utils

        windows, owner = [], []
        for i, (text,) in enumerate(req.args for req in requests):
            for ctx, cont in map(utils.make_disjoint_window, utils.get_rolling_token_windows(
                    token_list=self.tok_encode(text), prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length, context_len=1)):
                windows.append((list(ctx), list(cont)))
                owner.append(i)
        scores = self.scorer.loglikelihood(windows)
        totals = [0.0] * len(requests)
        for i, (logp, _) in zip(owner, scores):
            totals[i] += logp
        for req, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy generation (do_sample/temperature > 0 are refused: a benchmark number must not
        depend on a sampling seed), stopped at the request's ``until`` strings or the EOD."""
        from lm_eval.models.utils import (handle_stop_sequences, normalize_gen_kwargs,
                                          postprocess_generated_text)

        eos = self.tok_decode([self.eot_token_id], skip_special_tokens=False)
        groups: dict = {}
        for i, req in enumerate(requests):
            context, gen_kwargs = req.args
            kw = normalize_gen_kwargs(dict(gen_kwargs), self.max_gen_toks)
            if kw.get("do_sample") or kw.get("temperature", 0.0) > 0:
                raise ValueError(f"task {req.task_name}: sampled generation (do_sample/temperature) "
                                 "is not supported by xlda-megatron; greedy only")
            until = handle_stop_sequences(kw.get("until"), eos=eos)
            key = (kw["max_gen_toks"], tuple(until))
            groups.setdefault(key, []).append((i, context))
        out = [""] * len(requests)
        for (max_gen, until), items in groups.items():
            if max_gen >= self.max_length:
                raise ValueError(f"max_gen_toks {max_gen} must be < the model's length "
                                 f"{self.max_length}")
            keep = self.max_length - max_gen
            ctxs = [self.tok_encode(c)[-keep:] or [self.prefix_token_id] for _, c in items]

            def stop(new, until=until):
                return new[-1] == self.eot_token_id or any(
                    u and u in self.tok_decode(new) for u in until)

            for (i, context), new in zip(items, self.scorer.greedy(ctxs, max_gen, stop)):
                text = postprocess_generated_text(self.tok_decode(new), list(until), None)
                out[i] = text
                self.cache_hook.add_partial("generate_until", requests[i].args, text)
        return out
