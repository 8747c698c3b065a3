"""Config and driver: base BPE on the high-resource language, extended per language."""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Tokenizer

from .corpus import Doc, read_docs, split_heldout
from .extend import learn_extension, require
from .report import added_summary, encode_speed, evaluate, markdown, vocab_by_script
from .scripts import lang_scripts
from .sweep import write_sweep
from .train import EOD_TOKEN, SPECIAL_TOKENS, check_extension, combine, train_base


def _log(msg: str) -> None:
    print(f"[build_tokenizer] {msg}", file=sys.stderr)


@dataclass
class TokenizerBuildConfig:
    base_inputs: list[str]
    base_vocab_size: int
    output_dir: str
    extend_inputs: list[tuple[str, str]] = field(default_factory=list)  # (lang, path), repeatable per lang
    extend_tokens: dict[str, int] = field(default_factory=dict)  # applied in this order
    eval_inputs: list[tuple[str, str]] = field(default_factory=list)  # evaluated only (held-out part)
    base_lang: str = "en"
    heldout_fraction: float = 0.05
    min_frequency: int = 2
    seed: int = 1234
    max_docs: int | None = None  # per input file, for quick runs
    sweep_lang: str = "ko"
    sweep_tokens: list[int] | None = None
    speed_repeats: int = 3  # encode-speed timing runs (best is reported); 0 skips timing

    def validate(self) -> None:
        if self.base_vocab_size <= 0:
            raise ValueError(f"--base-vocab-size must be positive, got {self.base_vocab_size}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"--heldout-fraction must be in [0, 1), got {self.heldout_fraction}")
        if self.min_frequency < 1:
            raise ValueError(f"--min-frequency must be >= 1, got {self.min_frequency}")
        have = {lang for lang, _ in self.extend_inputs}
        for lang, n in self.extend_tokens.items():
            lang_scripts(lang)
            if n < 0:
                raise ValueError(f"--extend-tokens {lang}={n}: must be >= 0")
            if lang not in have:
                raise ValueError(f"--extend-tokens {lang}={n} has no --extend-input {lang}=PATH")
        for lang in have - set(self.extend_tokens) - ({self.sweep_lang} if self.sweep_tokens else set()):
            raise ValueError(f"--extend-input {lang}=... given without --extend-tokens {lang}=N")
        if self.sweep_tokens is not None:
            if not self.sweep_tokens or any(n < 0 for n in self.sweep_tokens):
                raise ValueError(f"sweep sizes must be non-negative integers, got {self.sweep_tokens}")
            if self.heldout_fraction == 0:
                raise ValueError("the sweep measures held-out text: use --heldout-fraction > 0")
            if self.sweep_lang not in have:
                raise ValueError(f"sweep over {self.sweep_lang} needs --extend-input {self.sweep_lang}=PATH")
        for p in self.base_inputs + [p for _, p in self.extend_inputs + self.eval_inputs]:
            if not Path(p).is_file():
                raise FileNotFoundError(f"input file not found: {p}")

    def build(self) -> dict:
        """Train, extend, check, write outputs; returns the report dict."""
        self.validate()
        out = Path(self.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        train, held = self._load()
        base = train_base(train[self.base_lang], self.base_vocab_size, self.min_frequency)
        heldout = {lang: [d.text for d in docs] for lang, docs in held.items() if docs}
        if self.sweep_tokens is not None:
            self._sweep(base, train, heldout, out)
        tok, added = self._extend(base, train, self.extend_tokens)
        path = out / "tokenizer.json"
        tok.save(str(path), pretty=True)
        self._write_hf_configs(out, tok)
        rep = self._report(base, tok, added, heldout, path)
        (out / "report.json").write_text(json.dumps(rep, indent=2, ensure_ascii=False) + "\n")
        (out / "report.md").write_text(markdown(rep))
        _log(f"wrote {path} ({tok.get_vocab_size()} tokens), report.json, report.md")
        return rep

    # -- steps ---------------------------------------------------------------------------
    def _load(self) -> tuple[dict[str, list[str]], dict[str, list[Doc]]]:
        train: dict[str, list[str]] = {}
        held: dict[str, list[Doc]] = {}
        sources = [(self.base_lang, p) for p in self.base_inputs] + list(self.extend_inputs)
        for lang, p in sources + list(self.eval_inputs):
            docs = read_docs(p, self.max_docs)
            tr, ho = split_heldout(docs, self.heldout_fraction, self.seed)
            _log(f"{p}: {len(docs)} documents ({lang}), {len(ho)} held out")
            if (lang, p) in sources:
                train.setdefault(lang, []).extend(d.text for d in tr)
            held.setdefault(lang, []).extend(ho)
        return train, held

    def _extend(self, base: Tokenizer, train: dict[str, list[str]],
                sizes: dict[str, int]) -> tuple[Tokenizer, dict[str, list[str]]]:
        """Each extension continues from the tokenizer built so far (so ja after zh does not
        relearn shared Han tokens and is segmented the way it will be encoded). Learned
        extensions are cached by (language, extensions before it): smaller sizes are prefixes."""
        cache: dict = self.__dict__.setdefault("_cache", {})
        tok, done, added = base, [], {}
        for lang, n in sizes.items():
            if n == 0:
                added[lang] = []
                continue
            key = (lang, tuple((e.lang, k) for e, k in done))
            ext = cache.get(key)
            if ext is None or (len(ext.merges) < n and not ext.exhausted):
                vocab = set(tok.get_vocab(with_added_tokens=True))
                ext = cache[key] = learn_extension(tok, vocab, train[lang], lang, n, self.min_frequency)
            require(ext, n, self.min_frequency)
            done.append((ext, n))
            added[lang] = ext.tokens(n)
            tok = combine(base, done)
        check_extension(base, tok, sum(sizes.values()))
        return tok, added

    def _sweep(self, base, train, heldout, out: Path) -> None:
        lang = self.sweep_lang
        points = sorted(set([0] + list(self.sweep_tokens)))
        _log(f"sweep {lang}: {points}")
        others = {k: v for k, v in self.extend_tokens.items() if k != lang}
        # The sweep language goes first and is learned once at the largest size (smaller sizes
        # are prefixes); other extensions are learned on top of each point.
        self._extend(base, train, {lang: points[-1]})
        rows = []
        for n in points:
            tok, _ = self._extend(base, train, {lang: n, **others})
            ev = evaluate(tok, heldout)
            rows.append({f"{lang}_tokens": n, "vocab_size": tok.get_vocab_size(),
                         **{f"chars_per_token_{l}": ev[l]["chars_per_token"] for l in ev}})
            _log(f"sweep {lang}={n}: " + ", ".join(f"{l} {ev[l]['chars_per_token']}" for l in ev))
        write_sweep(rows, lang, list(heldout), out)

    def _write_hf_configs(self, out: Path, tok: Tokenizer) -> None:
        """So `AutoTokenizer.from_pretrained(out)` works as well as tokenizer_file=..."""
        special = {"eos_token": EOD_TOKEN, "pad_token": SPECIAL_TOKENS[1], "bos_token": SPECIAL_TOKENS[2]}
        cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False,
               "add_eos_token": False, "clean_up_tokenization_spaces": False,
               "model_max_length": 1_000_000_000, **special,
               "additional_special_tokens": list(SPECIAL_TOKENS[3:])}
        (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")

    def _report(self, base, tok, added, heldout, path: Path) -> dict:
        all_held = [t for texts in heldout.values() for t in texts]
        vocab = tok.get_vocab(with_added_tokens=True)
        return {
            "vocab_size": tok.get_vocab_size(),
            "base_vocab_size": base.get_vocab_size(),
            "special_tokens": {t: vocab[t] for t in SPECIAL_TOKENS},
            "eod_token": EOD_TOKEN,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "vocab_by_script": vocab_by_script(t for t in vocab if t not in SPECIAL_TOKENS),
            "added": added_summary(added),
            "heldout": {"base": evaluate(base, heldout), "extended": evaluate(tok, heldout)},
            "encode_tokens_per_s": {"base": encode_speed(base, all_held, self.speed_repeats),
                                    "extended": encode_speed(tok, all_held, self.speed_repeats)},
            "config": {k: v for k, v in self.__dict__.items() if not k.startswith("_")},
        }
