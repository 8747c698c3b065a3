"""The three conversions: mcore -> hf, hf -> mcore, mcore -> mcore (reshard for another TP/PP)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from xlda.checkpoint_conversion import hf_io, layout, mcore_io
from xlda.checkpoint_conversion.arch import ConversionError, ModelArch, pad_vocab, torch_dtype

log = logging.getLogger(__name__)

FORMATS = ("mcore", "hf")


@dataclass
class ConvertConfig:
    source: str  # "mcore" | "hf"
    target: str  # "mcore" | "hf"
    load_dir: str
    save_dir: str
    target_tensor_parallel_size: int = 1
    target_pipeline_parallel_size: int = 1
    tokenizer_model: str | None = None
    iteration: int | None = None  # mcore source: default latest; hf source: the written iteration (0)
    max_shard_size: str = "5GB"
    dtype: str | None = None  # None: keep the source's stored dtype
    # mcore -> hf: a Jinja chat template file for tokenizer_config.json; None: the
    # chat_template.jinja a post-training run (posttrain.py) wrote into its --save dir, if any
    chat_template: str | None = None

    def validate(self) -> "ConvertConfig":
        if self.source not in FORMATS or self.target not in FORMATS:
            raise ConversionError(f"--from/--to must be one of {FORMATS}")
        if self.source == "hf" and self.target == "hf":
            raise ConversionError("--from hf --to hf is a copy; nothing to convert")
        if self.target_tensor_parallel_size < 1 or self.target_pipeline_parallel_size < 1:
            raise ConversionError("target parallel sizes must be >= 1")
        if self.dtype is not None:
            torch_dtype(self.dtype)
        return self

    def run(self) -> Path:
        self.validate()
        if self.source == "mcore" and self.target == "hf":
            return mcore_to_hf(self)
        if self.source == "hf":
            return hf_to_mcore(self)
        return mcore_to_mcore(self)


def _tokenizer(cfg: ConvertConfig, model_vocab: int, where: str):
    if cfg.tokenizer_model is None:
        return None
    tok = hf_io.TokenizerInfo(cfg.tokenizer_model)
    if tok.vocab_size > model_vocab:
        raise ConversionError(
            f"--tokenizer-model {tok.path} has {tok.vocab_size} tokens but the model ({where}) has "
            f"vocab_size={model_vocab}: ids >= {model_vocab} have no embedding. Pass the tokenizer the "
            "model was trained with")
    return tok


def _cast(state: dict[str, torch.Tensor], dtype: str | None) -> dict[str, torch.Tensor]:
    if dtype is None:
        return state
    dt = torch_dtype(dtype)
    return {k: v.to(dt) for k, v in state.items()}


def _stored_dtype(state: dict[str, torch.Tensor]) -> str:
    return str(next(iter(state.values())).dtype).replace("torch.", "")


CHAT_TEMPLATE_FILE = "chat_template.jinja"  # written by posttrain.py into its --save dir


def _chat_template(cfg: ConvertConfig, it_dir: Path) -> str | None:
    if cfg.chat_template is not None:
        path = Path(cfg.chat_template)
        if not path.is_file():
            raise ConversionError(f"--chat-template {path}: file not found")
        return path.read_text()
    for d in (it_dir, it_dir.parent):
        if (d / CHAT_TEMPLATE_FILE).is_file():
            return (d / CHAT_TEMPLATE_FILE).read_text()
    return None


def mcore_to_hf(cfg: ConvertConfig) -> Path:
    it_dir, it = mcore_io.resolve_iteration(cfg.load_dir, cfg.iteration)
    run_config = mcore_io.read_run_config(it_dir)
    arch = ModelArch.from_model_section(run_config["model"], where=str(it_dir / mcore_io.RUN_CONFIG))
    tok = _tokenizer(cfg, arch.vocab_size, str(it_dir / mcore_io.RUN_CONFIG))
    state = mcore_io.load_model_tensors(it_dir)
    hf = _cast(layout.mcore_to_hf(state, arch), cfg.dtype)
    dtype = _stored_dtype(hf)
    config = arch.to_hf_config(dtype, tok.eos_id if tok else None, tok.bos_id if tok else None)
    template = _chat_template(cfg, it_dir)
    if template is not None and tok is None:
        raise ConversionError("a chat template goes into tokenizer_config.json: pass "
                              "--tokenizer-model (the tokenizer.json the model was trained with)")
    out = hf_io.write_hf(cfg.save_dir, hf, config, tok, cfg.max_shard_size, arch.seq_length,
                         template)
    log.info("wrote HF Llama model (%d tensors, %s) from %s to %s", len(hf), dtype, it_dir, out)
    return out


def hf_to_mcore(cfg: ConvertConfig) -> Path:
    tp, pp = cfg.target_tensor_parallel_size, cfg.target_pipeline_parallel_size
    config, tensors = hf_io.read_hf(cfg.load_dir)
    where = str(Path(cfg.load_dir) / "config.json")
    arch = ModelArch.from_hf_config(config, where=where)
    arch.check_parallel(tp, pp)
    _tokenizer(cfg, arch.vocab_size, where)
    padded = pad_vocab(arch.vocab_size, arch.make_vocab_size_divisible_by, tp)
    state = _cast(layout.hf_to_mcore(tensors, arch, padded), cfg.dtype)
    arch = arch.replace(params_dtype=_stored_dtype(state))
    # megatron-core's default (homogeneous) layout: layers stacked along a leading axis.
    state = layout.stack_layers(state, arch.num_layers)
    run_config = {"model": arch.to_model_section(),
                  "parallel": {"tensor_model_parallel_size": tp, "pipeline_model_parallel_size": pp}}
    if cfg.tokenizer_model:
        run_config["data"] = {"tokenizer_type": "HuggingFaceTokenizer",
                              "tokenizer_model": str(Path(cfg.tokenizer_model).resolve())}
    it = cfg.iteration or 0
    objects = mcore_io.extra_state_objects(state, arch.num_layers)
    out = mcore_io.write_model_checkpoint(cfg.save_dir, it, state, objects, run_config,
                                          mcore_io.fresh_xlda_state(it, f"hf:{Path(cfg.load_dir).resolve()}"))
    log.info("wrote megatron-core checkpoint %s for TP=%d PP=%d (no optimizer state)", out, tp, pp)
    return out


def mcore_to_mcore(cfg: ConvertConfig) -> Path:
    tp, pp = cfg.target_tensor_parallel_size, cfg.target_pipeline_parallel_size
    it_dir, it = mcore_io.resolve_iteration(cfg.load_dir, cfg.iteration)
    run_config = mcore_io.read_run_config(it_dir)
    arch = ModelArch.from_model_section(run_config["model"], where=str(it_dir / mcore_io.RUN_CONFIG))
    arch.check_parallel(tp, pp)
    state = _cast(mcore_io.load_model_tensors(it_dir), cfg.dtype)
    # Padded vocab rows must split over the target TP as megatron pads them (divisible_by * TP).
    padded = pad_vocab(arch.vocab_size, arch.make_vocab_size_divisible_by, tp)
    for key in ("embedding.word_embeddings.weight", "output_layer.weight"):
        if key in state and state[key].shape[0] != padded:
            log.info("re-padding %s: %d -> %d rows", key, state[key].shape[0], padded)
            state[key] = layout.resize_vocab(state[key][: arch.vocab_size], padded)
    run_config = dict(run_config)
    run_config["parallel"] = {**(run_config.get("parallel") or {}),
                              "tensor_model_parallel_size": tp, "pipeline_model_parallel_size": pp}
    if cfg.dtype is not None:
        run_config["model"] = {**run_config["model"], "params_dtype": cfg.dtype}
    xlda_state = it_dir / mcore_io.XLDA_STATE
    if not xlda_state.exists():
        xlda_state = mcore_io.fresh_xlda_state(it, f"mcore:{it_dir.resolve()}")
    objects = mcore_io.load_model_objects(it_dir)
    out = mcore_io.write_model_checkpoint(cfg.save_dir, it, state, objects, run_config, xlda_state)
    log.info("resharded %s -> %s for TP=%d PP=%d (model only; no optimizer state)", it_dir, out, tp, pp)
    return out
