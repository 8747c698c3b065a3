"""xlda's datatrove steps: language ID, per-language quality filters, quality score, counts,
the per-language fan-out, and the annealing cut."""
from __future__ import annotations

import json
from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters import (FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter)

from xlda.curate.config import CurateError, LanguageConfig
from xlda.curate.heuristic import heuristic_score
from xlda.curate.quantile import KeyFiles, doc_key, top_k_count, write_keys
from xlda.curate.reports import TaskReport
from xlda.curate.words import ScriptWordTokenizer


class _Reporting(PipelineStep):
    """A step whose counts go to <report_dir>/<tag>.json when its input is exhausted."""

    def __init__(self, report_dir: str, report_tag: str = "{rank:05d}", max_examples: int = 5):
        super().__init__()
        self.report_dir, self.report_tag, self.max_examples = report_dir, report_tag, max_examples

    def _finish(self, report: TaskReport, rank: int) -> None:
        report.write(self.report_dir, self.report_tag.format(rank=rank))


class LanguageIdentifier(_Reporting):
    """Labels each document with `lang` and `lang_score` (the detector's confidence) using the
    project's offline identifiers (xlda.data.lang_id: script or lingua). Dropped and counted:
    undetected (no label), a language outside `languages`, or confidence below that language's
    `min_confidence`. The input's own `lang` field, if any, is kept as `source_lang`."""

    name = "xlda language id"
    type = "🔻 - FILTER"

    def __init__(self, method: str, min_confidence: dict[str, float], **kw):
        super().__init__(**kw)
        self.method, self.min_confidence = method, dict(min_confidence)

    def run(self, data, rank: int = 0, world_size: int = 1):
        from xlda.data.lang_id import build_lang_id

        det = build_lang_id(self.method, tuple(self.min_confidence))
        if det is None:
            raise CurateError("curation identifies languages by content: --lang-id script|lingua")
        report = TaskReport(self.max_examples)
        for doc in data:
            lang, conf = det.detect_scored(doc.text)
            if lang is None:
                report.add("unknown", "undetected_language", doc.id)
                continue
            if lang not in self.min_confidence:
                report.add(lang, "unknown_language", doc.id)
                continue
            if conf < self.min_confidence[lang]:
                report.add(lang, "low_confidence", doc.id)
                continue
            if "lang" in doc.metadata:
                doc.metadata["source_lang"] = doc.metadata.pop("lang")
            doc.metadata["lang"] = lang
            doc.metadata["lang_score"] = round(float(conf), 4)
            report.add(lang, "identified")
            yield doc
        self._finish(report, rank)


FILTERS = (("gopher_quality", GopherQualityFilter), ("gopher_repetition", GopherRepetitionFilter),
           ("fineweb_quality", FineWebQualityFilter))


def build_language_filters(cfg: LanguageConfig) -> list[tuple[str, object]]:
    """The language's filter chain in order, each with the offline word tokenizer."""
    tok = ScriptWordTokenizer(cfg.lang)
    out = []
    for name, cls in FILTERS:
        params = getattr(cfg, name)
        if params is not None:
            try:
                out.append((name, cls(**params, language=tok)))
            except TypeError as e:
                raise CurateError(f"curation config for {cfg.lang}: section {name}: {e}") from e
    return out


class LanguageQualityFilter(_Reporting):
    """Gopher quality, Gopher repetition and FineWeb line filters with each language's own
    thresholds; a document is dropped by the first filter that rejects it, counted per language
    as `<filter>:<datatrove's reason>`."""

    name = "xlda per-language quality filters"
    type = "🔻 - FILTER"

    def __init__(self, configs: dict[str, LanguageConfig], **kw):
        super().__init__(**kw)
        self.configs = configs

    def run(self, data, rank: int = 0, world_size: int = 1):
        chains = {lang: build_language_filters(c) for lang, c in self.configs.items()}
        report = TaskReport(self.max_examples)
        for doc in data:
            lang = doc.metadata["lang"]
            reason = decide(chains[lang], doc)
            if reason is None:
                report.add(lang, "kept")
                yield doc
            else:
                report.add(lang, reason, doc.id)
        self._finish(report, rank)


def decide(chain, doc) -> str | None:
    """None to keep, else the first rejecting filter's `<filter>:<reason>`."""
    for fname, f in chain:
        res = f.filter(doc)
        ok, reason = res if isinstance(res, tuple) else (res, None)
        if not ok:
            return f"{fname}:{reason or 'rejected'}"
    return None


class QualityScorer(_Reporting):
    """Writes `quality_score`: a numeric field already in the data, P(positive label) of a
    fastText classifier, or the built-in heuristic (xlda.curate.heuristic). Documents without a
    usable score are dropped and counted."""

    name = "xlda quality score"
    type = "🔢 - SCORER"

    def __init__(self, score_field: str | None = None, model_path: str | None = None,
                 label: str = "__label__hq", heuristic: bool = False, **kw):
        super().__init__(**kw)
        self.score_field, self.model_path, self.label = score_field, model_path, label
        self.heuristic = heuristic

    def run(self, data, rank: int = 0, world_size: int = 1):
        model = None
        if self.model_path:
            from xlda.curate.classifier import _import_fasttext, fasttext_text

            model = _import_fasttext().load_model(self.model_path)
            if self.label not in model.get_labels():
                raise CurateError(f"--quality-model {self.model_path}: no label {self.label!r} "
                                  f"(labels: {model.get_labels()}; pass --quality-label)")
        report = TaskReport(self.max_examples)
        for doc in data:
            lang = doc.metadata["lang"]
            if self.heuristic:
                score = heuristic_score(doc.text)
            elif model is not None:
                labels, probs = model.predict(fasttext_text(doc.text), k=-1)
                score = float(dict(zip(labels, probs)).get(self.label, 0.0))
            else:
                v = doc.metadata.get(self.score_field)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                    report.add(lang, "missing_score", f"{doc.id}: {self.score_field}={v!r}")
                    continue
                score = float(v)
            doc.metadata["quality_score"] = score
            yield doc
        self._finish(report, rank)


class CountDocs(_Reporting):
    """Counts documents per language at a point of the pipeline (before/after a dedup)."""

    name = "xlda count"
    type = "🔢 - COUNT"

    def run(self, data, rank: int = 0, world_size: int = 1):
        report = TaskReport(self.max_examples)
        for doc in data:
            report.add(doc.metadata["lang"], "documents")
            yield doc
        self._finish(report, rank)


class KeyRecorder(PipelineStep):
    """Saves this task's sorted score keys (see xlda.curate.quantile) for the annealing cut."""

    name = "xlda score keys"
    type = "🔢 - SCORER"

    def __init__(self, keys_file: str):
        super().__init__()
        self.keys_file = keys_file

    def run(self, data, rank: int = 0, world_size: int = 1):
        keys = []
        for doc in data:
            keys.append(doc_key(doc.metadata["quality_score"], doc.id, doc.text))
            yield doc
        write_keys(keys, self.keys_file.format(rank=rank))


class AnnealCut(_Reporting):
    """Keeps exactly the top `fraction` of a language's documents by (score, tie-break hash).
    Every task derives the same threshold from all tasks' key files (exact; no global sort)."""

    name = "xlda annealing cut"
    type = "🔻 - FILTER"

    def __init__(self, lang: str, fraction, keys_dir: str, **kw):
        super().__init__(**kw)
        self.lang, self.fraction, self.keys_dir = lang, fraction, keys_dir

    def run(self, data, rank: int = 0, world_size: int = 1):
        keys = KeyFiles(Path(self.keys_dir).glob("*.npy"))
        k = top_k_count(keys.total, self.fraction)
        threshold = keys.kth_largest(k)
        report = TaskReport(self.max_examples)
        report.extra = {"total": keys.total, "k": k, "fraction": str(self.fraction),
                        "threshold": None if threshold is None else str(threshold)}
        for doc in data:
            hi, lo = doc_key(doc.metadata["quality_score"], doc.id, doc.text)
            if threshold is not None and (hi << 64 | lo) >= threshold:
                report.add(self.lang, "annealing")
                yield doc
        self._finish(report, rank)


class LanguageFanout(PipelineStep):
    """One datatrove stage over all languages: `branches` is [(lang, tasks, steps)], and global
    rank r runs the branch that owns it with its rank inside the branch. This keeps one executor
    (one SLURM job array) per dedup stage instead of one per language and stage."""

    name = "xlda per-language fan-out"
    type = "🔀 - FANOUT"

    def __init__(self, branches: list[tuple[str, int, list]]):
        super().__init__()
        self.branches = branches

    @property
    def world_size(self) -> int:
        return sum(n for _, n, _ in self.branches)

    def locate(self, rank: int) -> tuple[str, int, int, list]:
        for lang, n, steps in self.branches:
            if rank < n:
                return lang, rank, n, steps
            rank -= n
        raise IndexError(f"rank beyond the fan-out's {self.world_size} tasks")

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        lang, inner, n, steps = self.locate(rank)
        for step in steps:
            data = step(data, inner, n)
        if data is not None:
            yield from data


def flat_adapter(self, document) -> dict:
    """Writer adapter: one flat record, as tools/preprocess_data.py reads it (text, lang, ...)."""
    return {"id": document.id, "text": document.text, **document.metadata}


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())
