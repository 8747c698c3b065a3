"""JSONL -> Megatron indexed datasets, one per language (library behind tools/preprocess_data.py).

Pipeline: the main process streams raw lines from the inputs in chunks (bounded: at most a few
chunks per worker are in flight), workers parse JSON, find the language and tokenize, and the
main process writes each language's documents, in input order, to
`<output-prefix>_<lang>_<key>_document.{bin,idx}` through megatron-core's IndexedDatasetBuilder.
Outputs are written under temporary names and made final together (xlda.data.outputs).
"""
from __future__ import annotations

import array
import collections
import glob
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xlda.data.groups import GroupSpec, group_hash, groups_path
from xlda.data.jsonl import open_lines
from xlda.data.lang_id import build_lang_id, is_lang_code, normalize_lang
from xlda.data.outputs import (
    OutputSet, PrefixLock, PreprocessError, dataset_prefix, io_error, remove_stale_temps,
)
from xlda.data.tokenizer import build_tokenizer

# Every way a line can fail to become a document; counted, reported, fatal under --strict.
REJECT_REASONS = (
    "malformed_json",
    "invalid_utf8",
    "invalid_unicode",
    "missing_text_key",
    "text_not_string",
    "empty_document",
    "document_too_long",
    "missing_language",
    "bad_group",
    "invalid_language",
    "undetected_language",
    "unknown_language",
)

# Lone UTF-16 surrogates: JSON's "\ud800" escape, or CESU-8 bytes (json.loads decodes bytes with
# 'surrogatepass'). No tokenizer accepts them.
_SURROGATE = re.compile("[\ud800-\udfff]")

# A raw line longer than this many bytes per allowed character cannot hold a text under the cap
# (JSON spells a character in at most 12 bytes: a \uXXXX\uXXXX surrogate pair), plus room for
# other fields: it is rejected unparsed, so one huge line never reaches json.loads or a tokenizer.
_BYTES_PER_CHAR, _LINE_SLACK = 12, 1 << 20

__all__ = ["PreprocessError", "PreprocessConfig", "Preprocessor", "REJECT_REASONS"]


def token_dtype(vocab_size: int) -> type:
    """uint16 when every id fits with headroom, else int32 (Megatron's rule, cutoff 65500)."""
    return np.uint16 if vocab_size < 65500 else np.int32


def output_prefix_for(output_prefix: str, lang: str, key: str = "text") -> str:
    return dataset_prefix(output_prefix, lang, key)


# ----------------------------------------------------------------------------- inputs


def expand_inputs(patterns) -> list[str]:
    """Files and globs -> ordered, de-duplicated file list; a pattern matching nothing is an error."""
    files: list[str] = []
    for pat in patterns:
        if glob.has_magic(pat):
            hits = sorted(p for p in glob.glob(pat, recursive=True) if os.path.isfile(p))
            if not hits:
                raise PreprocessError(f"--input {pat}: the pattern matches no files")
        else:
            if os.path.isdir(pat):
                raise PreprocessError(f"--input {pat}: is a directory; pass its files or a glob such as "
                                      f"'{os.path.join(pat, '*.jsonl*')}'")
            if not os.path.isfile(pat):
                raise PreprocessError(f"--input {pat}: no such file")
            hits = [pat]
        for h in hits:
            if h not in files:
                files.append(h)
    return files


def _zstd_error():
    try:
        import zstandard

        return zstandard.ZstdError
    except ImportError:
        return OSError


@dataclass(frozen=True)
class OverlongLine:
    """Stands in for a raw line over the byte cap, so the line itself never reaches a worker."""

    nbytes: int


def read_chunks(files, chunk_lines: int = 256, chunk_bytes: int = 1 << 22, max_line_bytes: int = 0):
    """Yield (file_index, first_line_number, [raw lines]); a chunk never spans two files."""
    for fi, path in enumerate(files):
        n = 0
        try:
            with open_lines(path) as f:
                lines, first, size, n = [], 1, 0, 0
                for n, line in enumerate(f, 1):
                    if max_line_bytes and len(line) > max_line_bytes:
                        line = OverlongLine(len(line))
                    lines.append(line)
                    size += len(line) if isinstance(line, bytes) else 64
                    if len(lines) >= chunk_lines or size >= chunk_bytes:
                        yield fi, first, lines
                        lines, first, size = [], n + 1, 0
                if lines:
                    yield fi, first, lines
        except (OSError, EOFError, ValueError, _zstd_error()) as e:
            # Corrupt/truncated compressed stream: not a per-line problem, so fatal.
            raise PreprocessError(
                f"{path}: cannot read past line {n} ({type(e).__name__}: {e}); "
                "the file is corrupt or truncated - re-create it or leave it out of --input"
            ) from e


# ----------------------------------------------------------------------------- workers


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, picklable (each worker builds its own tokenizer)."""

    tokenizer_type: str
    tokenizer_model: str
    json_keys: tuple[str, ...] = ("text",)
    lang_key: str = "lang"
    lang_id: str = "field"
    relabel_lang: bool = False
    default_lang: str | None = None
    languages: tuple[str, ...] | None = None
    append_eod: bool = False
    max_doc_chars: int = 0  # 0: no cap
    group_key: str | None = None  # xlda.data.groups: each document's group, hashed
    group_pattern: str | None = None


class _Worker:
    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.tok = build_tokenizer(spec.tokenizer_type, spec.tokenizer_model)
        self.detector = build_lang_id(spec.lang_id, spec.languages)
        self.dtype = token_dtype(self.tok.vocab_size)
        self.allowed = frozenset(spec.languages) if spec.languages else None
        self.group = GroupSpec(spec.group_key, spec.group_pattern) if spec.group_key else None

    def _group(self, obj):
        """-> (group id or 0, None) or (None, (reason, message))."""
        if self.group is None:
            return 0, None
        try:
            return group_hash(self.group.group_of(obj, "document")), None
        except ValueError as e:
            return None, ("bad_group", str(e).removeprefix("document: "))

    def _lang(self, obj):
        """-> (lang, None) or (None, (reason, message))."""
        s = self.spec
        if self.detector is not None and (s.relabel_lang or s.lang_key not in obj):
            lang = self.detector.detect(obj[s.json_keys[0]]) or s.default_lang
            if lang is None:
                return None, ("undetected_language", f"--lang-id {s.lang_id} found no language")
        else:
            value = obj.get(s.lang_key)
            if isinstance(value, str) and value.strip() and not is_lang_code(value):
                return None, ("invalid_language", f"{s.lang_key!r} is {value[:40]!r}, not a language code "
                              "like 'en' or 'zh-Hant'")
            lang = normalize_lang(value) or s.default_lang
            if lang is None:
                return None, (
                    "missing_language",
                    f"no usable {s.lang_key!r} field; pass --default-lang or --lang-id script|lingua",
                )
        if self.allowed is not None and lang not in self.allowed:
            return None, ("unknown_language", f"language {lang!r} is not in --languages")
        return lang, None

    def _parse(self, raw):
        """-> (object, None) or (None, (reason, message))."""
        if isinstance(raw, OverlongLine):
            return None, ("document_too_long", f"line of {raw.nbytes} bytes is over the cap that "
                          f"--max-doc-chars {self.spec.max_doc_chars} implies")
        try:
            obj = json.loads(raw)
        except UnicodeDecodeError as e:
            return None, ("invalid_utf8", str(e))
        except RecursionError:
            return None, ("malformed_json", "JSON nested too deeply")
        except ValueError as e:
            return None, ("malformed_json", str(e))
        if not isinstance(obj, dict):
            return None, ("malformed_json", f"expected a JSON object, got {type(obj).__name__}")
        return obj, None

    def _texts(self, obj):
        """-> ([text per --json-keys key], None) or (None, (reason, message)). A line is kept for
        every key or for none, so document i of each key's dataset comes from the same line."""
        texts, cap = [], self.spec.max_doc_chars
        for key in self.spec.json_keys:
            if key not in obj:
                return None, ("missing_text_key", f"no {key!r} key (keys: {sorted(obj)[:8]})")
            text = obj[key]
            if not isinstance(text, str):
                return None, ("text_not_string", f"{key!r} is {type(text).__name__}, not a string")
            if not text.strip():
                return None, ("empty_document", f"{key!r} is empty or whitespace")
            if cap and len(text) > cap:
                return None, ("document_too_long", f"{key!r} has {len(text)} characters > --max-doc-chars {cap}")
            m = _SURROGATE.search(text)
            if m:
                return None, ("invalid_unicode", f"{key!r} holds a lone surrogate U+{ord(m[0]):04X} at "
                              f"character {m.start()}")
            texts.append(text)
        return texts, None

    def _tokenize(self, texts):
        """-> ([ids per key], None) or (None, (reason, message))."""
        out = []
        for key, text in zip(self.spec.json_keys, texts):
            ids = self.tok.tokenize(text)
            if not ids:
                return None, ("empty_document", f"{key!r} tokenizes to no tokens")
            if self.spec.append_eod:
                ids.append(self.tok.eod)
            out.append(np.asarray(ids, dtype=self.dtype))
        return out, None

    def process(self, chunk):
        fi, first, lines = chunk
        docs, rejects, nbytes, blank = [], [], 0, 0
        for i, raw in enumerate(lines):
            overlong = isinstance(raw, OverlongLine)
            nbytes += raw.nbytes if overlong else len(raw)
            if not overlong and not raw.strip():
                blank += 1
                continue
            obj, why = self._parse(raw)
            if why is None:
                texts, why = self._texts(obj)
            if why is None:
                lang, why = self._lang(obj)
            if why is None:
                gid, why = self._group(obj)
            if why is None:
                per_key, why = self._tokenize(texts)
            if why is not None:
                rejects.append((why[0], fi, first + i, why[1]))
                continue
            docs.append((lang, per_key, gid))
        return fi, docs, rejects, nbytes, blank


_WORKER: _Worker | None = None


def _init_worker(spec: WorkerSpec) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and cleans up
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (inherited by fork)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _WORKER = _Worker(spec)


def _work(chunk):
    return _WORKER.process(chunk)


def _results(spec: WorkerSpec, chunks, workers: int, worker: _Worker | None = None):
    """Chunk results in input order; in flight at most 4 chunks per worker (bounded memory)."""
    if workers <= 1:
        w = worker or _Worker(spec)
        for c in chunks:
            yield w.process(c)
        return
    import multiprocessing as mp

    # fork: workers need nothing from __main__ (spawn breaks for stdin/REPL callers and makes
    # multiprocessing respawn failing workers forever). The parent has not run the tokenizer's
    # thread pool when workers > 1, so forking is safe for it.
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pool = ctx.Pool(workers, initializer=_init_worker, initargs=(spec,))
    try:
        pending = collections.deque()
        for c in chunks:
            pending.append(pool.apply_async(_work, (c,)))
            if len(pending) >= 4 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
        pool.close()
    finally:
        pool.terminate()
        pool.join()


# ----------------------------------------------------------------------------- writer


class LanguageWriter:
    """One IndexedDatasetBuilder per (language, key), under temp names until `commit`."""

    def __init__(self, output_prefix: str, dtype, keys=("text",), group_field: str | None = None):
        self.output_prefix, self.dtype, self.keys = output_prefix, dtype, tuple(keys)
        self.builders: dict[tuple[str, str], tuple[object, str]] = {}
        self.outputs = OutputSet(output_prefix)
        self.group_field = group_field  # each language's groups go beside each of its datasets
        self.groups: dict[str, array.array] = {}

    def final_prefix(self, lang: str, key: str | None = None) -> str:
        return output_prefix_for(self.output_prefix, lang, key or self.keys[0])

    def add(self, lang: str, per_key, group: int = 0) -> None:
        if self.group_field:
            self.groups.setdefault(lang, array.array("q")).append(group)
        for key, ids in zip(self.keys, per_key):
            entry = self.builders.get((lang, key))
            if entry is None:
                from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

                tmp_bin = self.outputs.temp(self.final_prefix(lang, key) + ".bin")
                try:
                    entry = (IndexedDatasetBuilder(tmp_bin, dtype=self.dtype), tmp_bin)
                except OSError as e:
                    raise io_error(tmp_bin, e) from None
                self.builders[(lang, key)] = entry
            try:
                entry[0].add_document(ids, [len(ids)])
            except OSError as e:
                raise io_error(entry[1], e) from None

    def finalize(self) -> dict[str, dict[str, str]]:
        """Write every index (still under temp names) -> {lang: {key: final prefix}}."""
        out: dict[str, dict[str, str]] = {}
        for (lang, key), (b, tmp_bin) in self.builders.items():
            tmp_idx = self.outputs.temp(self.final_prefix(lang, key) + ".idx")
            try:
                b.finalize(tmp_idx)
            except OSError as e:
                raise io_error(tmp_bin if not b.data_file.closed else tmp_idx, e) from None
            out.setdefault(lang, {})[key] = self.final_prefix(lang, key)
            if self.group_field:
                tmp = self.outputs.temp(groups_path(self.final_prefix(lang, key), self.group_field))
                try:
                    with open(tmp, "wb") as f:  # np.save(path) would append .npy to a temp name
                        np.save(f, np.frombuffer(self.groups[lang], dtype=np.int64))
                except OSError as e:
                    raise io_error(tmp, e) from None
        return out

    def abort(self) -> None:
        for b, _ in self.builders.values():
            try:
                b.data_file.close()
            except Exception:
                pass
        self.outputs.abort()


# ----------------------------------------------------------------------------- driver


@dataclass
class LangStats:
    documents: int = 0
    tokens: dict = field(default_factory=dict)  # key -> tokens
    sources: set = field(default_factory=set)


@dataclass
class Report:
    languages: dict
    rejected: dict
    examples: dict
    documents: int
    tokens: int
    bytes: int
    blank_lines: int
    seconds: float
    manifest_path: str | None = None
    warnings: list = field(default_factory=list)

    def format(self) -> str:
        rate = lambda x: x / max(self.seconds, 1e-9)
        out = [
            f"preprocess: {self.documents} docs, {self.tokens} tokens, {self.bytes / 1e6:.1f} MB "
            f"in {self.seconds:.1f} s ({rate(self.documents):.0f} docs/s, {rate(self.tokens):.0f} tokens/s, "
            f"{rate(self.bytes) / 1e6:.2f} MB/s)"
        ]
        for lang, s in sorted(self.languages.items()):
            out.append(f"  {lang}: {s['documents']} docs, {s['tokens']} tokens -> {s['prefix']}")
        n_rej = sum(self.rejected.values())
        if n_rej:
            out.append(f"rejected {n_rej} lines:")
            for reason, n in self.rejected.items():
                if n:
                    out.append(f"  {reason}: {n}")
                    out.extend(f"    {ex}" for ex in self.examples.get(reason, []))
        else:
            out.append("rejected 0 lines")
        if self.blank_lines:
            out.append(f"skipped {self.blank_lines} blank lines")
        out.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(out)


@dataclass
class PreprocessConfig:
    input: list
    output_prefix: str
    tokenizer_type: str
    tokenizer_model: str
    json_keys: tuple = ("text",)
    lang_key: str = "lang"
    lang_id: str = "field"
    relabel_lang: bool = False
    default_lang: str | None = None
    languages: tuple | None = None
    append_eod: bool = False
    workers: int = 1
    log_interval: int = 1000
    strict: bool = False
    max_reject_examples: int = 5
    chunk_lines: int = 256
    max_doc_chars: int = 4_000_000  # 0: no cap
    group_key: str | None = None  # --group-key: store each document's group (affinity packing)
    group_pattern: str | None = None  # --group-pattern: a regex, its first group is the group

    def build(self) -> "Preprocessor":
        return Preprocessor(self)


def _check_lang_option(flag: str, value: str) -> str:
    if not is_lang_code(value):
        raise PreprocessError(f"{flag} {value!r}: not a language code (e.g. en, ko, zh-Hant)")
    return normalize_lang(value)


class Preprocessor:
    def __init__(self, cfg: PreprocessConfig):
        if cfg.workers < 1:
            raise PreprocessError(f"--workers {cfg.workers}: must be >= 1")
        if cfg.max_doc_chars < 0:
            raise PreprocessError(f"--max-doc-chars {cfg.max_doc_chars}: must be >= 0 (0: no cap)")
        if cfg.relabel_lang and cfg.lang_id == "field":
            raise PreprocessError("--relabel-lang needs a detector: add --lang-id script or --lang-id lingua")
        keys = tuple(cfg.json_keys)
        if not keys or len(set(keys)) != len(keys) or not all(re.fullmatch(r"[\w.-]+", k) for k in keys):
            raise PreprocessError(f"--json-keys {' '.join(keys)}: give distinct keys made of letters, digits, "
                                  "'_', '.', '-' (they become part of file names)")
        self.cfg = cfg
        self.files = expand_inputs(cfg.input)
        languages = None
        if cfg.languages:
            languages = tuple(_check_lang_option("--languages", x) for x in cfg.languages)
        self.spec = WorkerSpec(
            tokenizer_type=cfg.tokenizer_type,
            tokenizer_model=str(cfg.tokenizer_model),
            json_keys=keys,
            lang_key=cfg.lang_key,
            lang_id=cfg.lang_id,
            relabel_lang=cfg.relabel_lang,
            default_lang=_check_lang_option("--default-lang", cfg.default_lang) if cfg.default_lang else None,
            languages=languages,
            append_eod=cfg.append_eod,
            max_doc_chars=cfg.max_doc_chars,
            group_key=cfg.group_key,
            group_pattern=cfg.group_pattern,
        )
        if cfg.group_pattern and not cfg.group_key:
            raise PreprocessError("--group-pattern needs --group-key (the field it applies to)")
        if cfg.group_key:
            try:
                GroupSpec(cfg.group_key, cfg.group_pattern)
            except ValueError as e:
                raise PreprocessError(str(e)) from None
        # Built here too so bad tokenizer/lang-id settings fail before any worker starts.
        self.worker = _Worker(self.spec)
        self.tokenizer = self.worker.tok

    def run(self, log=None) -> Report:
        cfg, log = self.cfg, log or sys.stderr
        Path(cfg.output_prefix).parent.mkdir(parents=True, exist_ok=True)
        with PrefixLock(cfg.output_prefix):
            remove_stale_temps(cfg.output_prefix, log)
            writer = LanguageWriter(cfg.output_prefix, self.worker.dtype, self.spec.json_keys,
                                    cfg.group_key)
            try:
                report = self._run(writer, log)
                report.manifest_path = writer.outputs.commit(self._manifest(report), self.spec.json_keys, log)
            except BaseException:
                writer.abort()
                raise
        return report

    def _run(self, writer: LanguageWriter, log) -> Report:
        cfg, files = self.cfg, self.files
        stats: dict[str, LangStats] = {}
        rejected = {r: 0 for r in REJECT_REASONS}
        examples: dict[str, list[str]] = {}
        lines_per_file = [0] * len(files)
        n_docs = n_tok = n_bytes = n_blank = n_lines_seen = 0
        t0 = time.perf_counter()
        next_log = cfg.log_interval
        max_line = cfg.max_doc_chars * _BYTES_PER_CHAR * len(self.spec.json_keys) + _LINE_SLACK if cfg.max_doc_chars else 0
        chunks = read_chunks(files, cfg.chunk_lines, max_line_bytes=max_line)
        for fi, docs, rejects, nbytes, blank in _results(self.spec, chunks, cfg.workers, self.worker):
            for lang, per_key, gid in docs:
                writer.add(lang, per_key, gid)
                s = stats.get(lang) or stats.setdefault(lang, LangStats())
                s.documents += 1
                for key, ids in zip(self.spec.json_keys, per_key):
                    s.tokens[key] = s.tokens.get(key, 0) + len(ids)
                s.sources.add(fi)
                n_tok += len(per_key[0])
            for reason, rfi, line_no, msg in rejects:
                where = f"{files[rfi]}:{line_no}: {reason}: {msg}"
                if cfg.strict:
                    raise PreprocessError(f"{where} (--strict: stopping; outputs removed)")
                rejected[reason] += 1
                ex = examples.setdefault(reason, [])
                if len(ex) < cfg.max_reject_examples:
                    ex.append(where)
            n_docs += len(docs)
            n_bytes += nbytes
            n_blank += blank
            n_lines_seen += len(docs) + len(rejects)
            lines_per_file[fi] += len(docs) + len(rejects)
            if cfg.log_interval and n_lines_seen >= next_log:
                dt = max(time.perf_counter() - t0, 1e-9)
                print(
                    f"processed {n_lines_seen} docs ({n_docs / dt:.0f} docs/s, {n_tok / dt:.0f} tokens/s, "
                    f"{n_bytes / dt / 1e6:.2f} MB/s), rejected {sum(rejected.values())}",
                    file=log, flush=True,
                )
                next_log = (n_lines_seen // cfg.log_interval + 1) * cfg.log_interval
        prefixes = writer.finalize()
        warnings = [f"{files[i]}: no documents (the file is empty or holds only blank lines)"
                    for i, n in enumerate(lines_per_file) if n == 0]
        if n_docs == 0:
            warnings.append(f"no documents were written for --output-prefix {cfg.output_prefix}")
        key0 = self.spec.json_keys[0]
        languages = {
            lang: {
                "prefix": os.path.abspath(prefixes[lang][key0]),
                "documents": s.documents,
                "tokens": s.tokens[key0],
                "sources": [os.path.abspath(files[i]) for i in sorted(s.sources)],
                "keys": {k: {"prefix": os.path.abspath(prefixes[lang][k]), "tokens": s.tokens[k]}
                         for k in self.spec.json_keys},
            }
            for lang, s in sorted(stats.items())
        }
        return Report(
            languages=languages,
            rejected=rejected,
            examples=examples,
            documents=n_docs,
            tokens=n_tok,
            bytes=n_bytes,
            blank_lines=n_blank,
            seconds=time.perf_counter() - t0,
            warnings=warnings,
        )

    def _manifest(self, report: Report) -> dict:
        cfg = self.cfg
        return {
            "tokenizer": self.tokenizer.identity(),
            "languages": report.languages,
            "rejected": report.rejected,
            "reject_examples": report.examples,
            "blank_lines": report.blank_lines,
            "dtype": np.dtype(self.worker.dtype).name,
            "json_key": self.spec.json_keys[0],
            "json_keys": list(self.spec.json_keys),
            "append_eod": cfg.append_eod,
            "max_doc_chars": cfg.max_doc_chars,
            "group_key": cfg.group_key,
            "group_pattern": cfg.group_pattern,
            "lang_id": {
                "method": cfg.lang_id,
                "lang_key": cfg.lang_key,
                "relabel_lang": cfg.relabel_lang,
                "default_lang": self.spec.default_lang,
                "languages": list(self.spec.languages) if self.spec.languages else None,
            },
            "inputs": [os.path.abspath(f) for f in self.files],
        }
