"""Typed configuration of a curation run: one `LanguageConfig` per language (a readable YAML in
xlda/curate/configs/<lang>.yaml, or the user's --language-config-dir) and one `CurateConfig` for the run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).parent / "configs"
_SECTIONS = ("language_id", "gopher_quality", "gopher_repetition", "fineweb_quality", "minhash")
OUTPUT_FORMATS = ("jsonl", "parquet")
EXECUTORS = ("local", "slurm")


class CurateError(RuntimeError):
    """Bad input or configuration; the message names the file/flag and what to do."""


@dataclass
class LanguageConfig:
    lang: str
    min_confidence: float
    gopher_quality: dict | None
    gopher_repetition: dict | None
    fineweb_quality: dict | None
    minhash: dict

    @classmethod
    def load(cls, lang: str, config_dir: str | os.PathLike | None = None) -> "LanguageConfig":
        path = Path(config_dir or CONFIG_DIR) / f"{lang}.yaml"
        if not path.is_file():
            raise CurateError(f"no curation config for language {lang!r}: {path} does not exist "
                              f"(copy one of {CONFIG_DIR}/*.yaml and adapt it)")
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        unknown = set(raw) - set(_SECTIONS) - {"lang"}
        if unknown:
            raise CurateError(f"{path}: unknown sections {sorted(unknown)}; allowed: lang, "
                              f"{', '.join(_SECTIONS)}")
        if raw.get("lang", lang) != lang:
            raise CurateError(f"{path}: lang: {raw['lang']!r} but the file is for {lang!r}")
        lid = raw.get("language_id") or {}
        if "min_confidence" not in lid:
            raise CurateError(f"{path}: language_id.min_confidence is required")

        def section(name):
            v = raw.get(name)
            if v is not None and not isinstance(v, dict):
                raise CurateError(f"{path}: {name} must be a mapping (or null to disable the filter)")
            return _tuples(v)

        mh = section("minhash") or {}
        return cls(lang=lang, min_confidence=float(lid["min_confidence"]),
                   gopher_quality=section("gopher_quality"),
                   gopher_repetition=section("gopher_repetition"),
                   fineweb_quality=section("fineweb_quality"), minhash=mh)


def _tuples(d):
    # YAML lists of [n, fraction] pairs -> the tuples datatrove's filters expect.
    if d is None:
        return None
    return {k: (tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list)
                and v and isinstance(v[0], list) else v) for k, v in d.items()}


def parse_lang_fractions(spec: str | None, flag: str = "--anneal-top") -> dict[str, Fraction]:
    """'en=0.2,ko=0.1' -> {'en': Fraction(1, 5), 'ko': Fraction(1, 10)} (exact, from the decimal text)."""
    if not spec:
        return {}
    out = {}
    for part in spec.split(","):
        lang, sep, val = part.strip().partition("=")
        try:
            frac = Fraction(val.strip())
        except (ValueError, ZeroDivisionError):
            frac = None
        if not sep or not lang or frac is None or not 0 < frac <= 1:
            raise CurateError(f"{flag} {spec!r}: want lang=fraction pairs with 0 < fraction <= 1, "
                              f"e.g. en=0.2,ko=0.1")
        out[lang.strip()] = frac
    return out


@dataclass
class CurateConfig:
    inputs: list[str]
    output_dir: str
    languages: tuple[str, ...] = ("en", "ko", "ja", "zh")
    lang_id: str = "script"  # script | lingua (xlda.data.lang_id; both offline)
    text_key: str = "text"
    id_key: str = "id"
    output_format: str = "jsonl"
    language_config_dir: str | None = None
    score_field: str | None = None      # a numeric field already in the data (FineWeb-Edu: score)
    quality_model: str | None = None    # a fastText classifier file
    quality_label: str = "__label__hq"  # its positive label
    heuristic_score: bool = False       # the built-in text-statistics score (xlda.curate.heuristic)
    anneal_top: dict = field(default_factory=dict)  # lang -> Fraction
    strict: bool = False
    max_examples: int = 5
    executor: str = "local"
    tasks: int = 0          # 0: one task per input file
    workers: int = -1       # local: parallel processes (-1: all tasks at once)
    # SLURM
    partition: str | None = None
    time: str = "04:00:00"
    cpus_per_task: int = 1
    mem_per_cpu_gb: int = 2
    job_name: str = "xlda-curate"
    tasks_per_job: int = 1  # ranks one SLURM array element runs in turn (small stages: >1)
    sbatch_args: dict = field(default_factory=dict)
    env_command: str | None = None

    def __post_init__(self):
        if self.output_format not in OUTPUT_FORMATS:
            raise CurateError(f"--output-format {self.output_format!r}: use one of {OUTPUT_FORMATS}")
        if self.executor not in EXECUTORS:
            raise CurateError(f"--executor {self.executor!r}: use one of {EXECUTORS}")
        given = [f for f, v in (("--score-field", self.score_field),
                                ("--quality-model", self.quality_model),
                                ("--heuristic-score", self.heuristic_score)) if v]
        if len(given) > 1:
            raise CurateError(f"give one quality score, not {' and '.join(given)}")
        if self.anneal_top and not given:
            raise CurateError(
                "--anneal-top needs a score: --score-field FIELD (a number already in the data), "
                "--quality-model FILE (train one: python tools/train_quality_classifier.py "
                "--positive GOOD.jsonl --negative OTHER.jsonl --output quality.ftz) or "
                "--heuristic-score (built in: prose over boilerplate, no model)")
        extra = set(self.anneal_top) - set(self.languages)
        if extra:
            raise CurateError(f"--anneal-top names {sorted(extra)}, not among --languages "
                              f"{','.join(self.languages)}")
        if self.quality_model and not Path(self.quality_model).is_file():
            raise CurateError(f"--quality-model {self.quality_model}: no such file "
                              "(train one with tools/train_quality_classifier.py)")

    def language_configs(self) -> dict[str, LanguageConfig]:
        return {lang: LanguageConfig.load(lang, self.language_config_dir) for lang in self.languages}

    def build(self):
        from xlda.curate.pipeline import CurationPipeline

        return CurationPipeline(self)
