"""HF model folders: sharded safetensors + index, config.json, generation_config.json, tokenizer."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import torch

from xlda.checkpoint_conversion.arch import ConversionError
from xlda.checkpoint_conversion.staging import Staging
from xlda.data.tokenizer import BOS_CANDIDATES as _BOS_CANDIDATES
from xlda.data.tokenizer import END_OF_TURN_TOKENS

log = logging.getLogger(__name__)

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
_EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>")


def parse_size(text) -> int:
    """'5GB', '200MB', '10KB' or a byte count -> bytes."""
    s = str(text).strip().upper()
    for unit, mult in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)):
        if s.endswith(unit):
            return int(float(s[: -len(unit)]) * mult)
    return int(s)


class TokenizerInfo:
    """The facts of a tokenizer.json an HF export needs: vocab size and special tokens."""

    def __init__(self, path):
        from tokenizers import Tokenizer

        self.path = Path(path)
        if self.path.suffix != ".json":
            raise ConversionError(f"--tokenizer-model {self.path}: only HF tokenizer.json files are supported")
        if not self.path.exists():
            raise ConversionError(f"--tokenizer-model {self.path} does not exist")
        try:
            tok = Tokenizer.from_file(str(self.path))
        except Exception as e:  # tokenizers raises plain Exception for bad JSON / unknown models
            raise ConversionError(f"--tokenizer-model {self.path}: not a valid HF tokenizer.json ({e}); pass the "
                                  "tokenizer.json the model was trained with") from None
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)
        self.eos = next((t for t in _EOS_CANDIDATES if tok.token_to_id(t) is not None), None)
        self.bos = next((t for t in _BOS_CANDIDATES if tok.token_to_id(t) is not None), None)
        self.eos_id = tok.token_to_id(self.eos) if self.eos else None
        self.bos_id = tok.token_to_id(self.bos) if self.bos else None
        self.end_of_turn_id = next((tok.token_to_id(t) for t in END_OF_TURN_TOKENS
                                    if tok.token_to_id(t) is not None), None)


def _shard(tensors: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    shards, cur, size = [], {}, 0
    for k, t in tensors.items():
        n = t.numel() * t.element_size()
        if cur and size + n > max_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[k] = t
        size += n
    if cur:
        shards.append(cur)
    return shards


def write_hf(out_dir, tensors: dict[str, torch.Tensor], config: dict, tokenizer: TokenizerInfo | None,
             max_shard_size: str = "5GB", seq_length: int | None = None,
             chat_template: str | None = None) -> Path:
    """Write the folder under a temporary name beside ``out_dir`` and rename it when complete: a
    full disk or a kill leaves no half-written model folder (and a rerun is not refused)."""
    out = Path(out_dir)
    with Staging(out, kind="dir") as stage:
        _write_hf_files(stage.path, tensors, config, tokenizer, max_shard_size, seq_length,
                        chat_template)
    return out


def _write_hf_files(out: Path, tensors, config, tokenizer, max_shard_size, seq_length,
                    chat_template=None) -> None:
    from safetensors.torch import save_file

    def save(shard, name):
        save_file(shard, str(out / name), metadata={"format": "pt"})
        # safetensors creates its files 0600; outputs get the usual umask-respecting mode.
        os.chmod(out / name, 0o666 & ~_umask())

    shards = _shard(tensors, parse_size(max_shard_size))
    if len(shards) == 1:
        save(shards[0], SINGLE)
    else:
        weight_map = {}
        for i, shard in enumerate(shards):
            name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            log.info("writing %s (%d tensors)", name, len(shard))
            save(shard, name)
            weight_map.update({k: name for k in shard})
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        (out / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (out / "config.json").write_text(json.dumps(config, indent=2))
    eos = config.get("eos_token_id")
    if chat_template and tokenizer is not None and tokenizer.end_of_turn_id is not None:
        # a chat model ends its turn with the template's end-of-turn token: generate stops there
        eos = [e for e in (eos, tokenizer.end_of_turn_id) if e is not None]
    elif chat_template and tokenizer is not None:
        log.warning("the chat template's end of turn is no token of %s: generation stops only "
                    "at eos_token_id %s (a tokenizer from tools/build_tokenizer.py reserves "
                    "<|im_end|>)", tokenizer.path, eos)
    gen = {"_from_model_config": True, "bos_token_id": config.get("bos_token_id"),
           "eos_token_id": eos, "do_sample": False}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2))
    if tokenizer is not None:
        shutil.copyfile(tokenizer.path, out / "tokenizer.json")
        tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": tokenizer.eos,
                   "bos_token": tokenizer.bos, "clean_up_tokenization_spaces": False,
                   "model_max_length": seq_length or config.get("max_position_embeddings")}
        if chat_template:
            tok_cfg["chat_template"] = chat_template
        (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2))
        specials = {k: v for k, v in (("eos_token", tokenizer.eos), ("bos_token", tokenizer.bos)) if v}
        (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_hf(in_dir) -> tuple[dict, dict[str, torch.Tensor]]:
    """-> (config.json dict, all tensors). Errors name the missing or broken file."""
    from safetensors import safe_open

    d = Path(in_dir)
    if not d.is_dir():
        raise ConversionError(f"--load-dir {d} does not exist")
    cfg_path = d / "config.json"
    if not cfg_path.exists():
        raise ConversionError(f"{cfg_path} is missing; an HF model folder needs its config.json "
                              "(save it with model.save_pretrained or copy it from the source)")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ConversionError(f"{cfg_path}: invalid JSON: {e}") from None
    if not isinstance(config, dict):
        raise ConversionError(f"{cfg_path}: expected a JSON object, got {type(config).__name__}")
    archs = config.get("architectures") or []
    if "model_type" not in config and "LlamaForCausalLM" not in archs:
        raise ConversionError(f"{cfg_path}: no model_type (architectures={archs}); only Llama models convert "
                              "(model_type 'llama')")
    if config.get("model_type", "llama") != "llama":
        raise ConversionError(f"{cfg_path}: model_type={config.get('model_type')!r}; only Llama models convert")
    if (d / INDEX).exists():
        try:
            weight_map = json.loads((d / INDEX).read_text())["weight_map"]
            if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
                raise KeyError("weight_map is not a {tensor: file} object")
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ConversionError(f"{d / INDEX}: not a safetensors index ({e})") from None
        files = sorted(set(weight_map.values()))
    elif (d / SINGLE).exists():
        weight_map, files = None, [SINGLE]
    else:
        raise ConversionError(f"{d} holds neither {INDEX} nor {SINGLE}; only safetensors weights are read")
    missing = [f for f in files if not (d / f).exists()]
    if missing:
        raise ConversionError(f"{d / missing[0]} is listed in {INDEX} but missing"
                              f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; "
                              "download the complete model folder")
    tensors = {}
    for f in files:
        try:
            with safe_open(str(d / f), framework="pt") as sf:
                for k in sf.keys():
                    tensors[k] = sf.get_tensor(k)
        except Exception as e:  # SafetensorError: truncated, garbled header, data past the end
            raise ConversionError(f"{d / f}: not a readable safetensors file ({e}); it is truncated or "
                                  "corrupt: download or copy it again") from None
    if weight_map is not None:
        absent = sorted(set(weight_map) - set(tensors))
        if absent:
            raise ConversionError(f"{d / INDEX} lists tensors not found in their shard files: {absent[:5]}")
    return config, tensors
