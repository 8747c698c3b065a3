"""JSONL -> Megatron indexed datasets, one per language (library behind tools/preprocess_data.py).

Pipeline: the main process streams raw lines from the inputs in chunks (bounded: at most a few
chunks per worker are in flight), workers parse JSON, find the language and tokenize, and the
main process writes each language's documents, in input order, to
`<output-prefix>_<lang>_<key>_document.{bin,idx}` through megatron-core's IndexedDatasetBuilder.
Outputs are written under temporary names and renamed only after everything succeeded.
"""
from __future__ import annotations

import collections
import glob
import gzip
import io
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xlda.data.lang_id import build_lang_id, normalize_lang
from xlda.data.tokenizer import build_tokenizer

# Every way a line can fail to become a document; counted, reported, fatal under --strict.
REJECT_REASONS = (
    "malformed_json",
    "invalid_utf8",
    "missing_text_key",
    "text_not_string",
    "empty_document",
    "missing_language",
    "undetected_language",
    "unknown_language",
)


class PreprocessError(RuntimeError):
    """Fatal input/config problem; the message names the file (and line) and what to do."""


def token_dtype(vocab_size: int) -> type:
    """uint16 when every id fits with headroom, else int32 (Megatron's rule, cutoff 65500)."""
    return np.uint16 if vocab_size < 65500 else np.int32


def output_prefix_for(output_prefix: str, lang: str, key: str = "text") -> str:
    return f"{output_prefix}_{lang}_{key}_document"


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
            if not os.path.isfile(pat):
                raise PreprocessError(f"--input {pat}: no such file")
            hits = [pat]
        for h in hits:
            if h not in files:
                files.append(h)
    return files


def open_lines(path: str):
    """Binary line stream of a .jsonl, .jsonl.gz or .jsonl.zst file (streamed, never all read)."""
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith((".zst", ".zstd")):
        return _ZstdLines(path)
    return open(path, "rb")


class _ZstdLines:
    """Lines of a (multi-frame) .zst file; a truncated last frame is an error, not silent EOF
    (zstandard's stream_reader just stops there)."""

    def __init__(self, path: str):
        self.fh = open(path, "rb")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def __iter__(self):
        import zstandard

        dctx = zstandard.ZstdDecompressor()
        dobj, in_frame, tail = dctx.decompressobj(), False, b""
        while data := self.fh.read(1 << 20):
            out = []
            while data:
                in_frame = True
                out.append(dobj.decompress(data))
                if not dobj.eof:
                    break
                data, dobj, in_frame = dobj.unused_data, dctx.decompressobj(), False
            lines = (tail + b"".join(out)).split(b"\n")
            tail = lines.pop()
            yield from (line + b"\n" for line in lines)
        if in_frame:
            raise EOFError("zstd stream ends inside a frame")
        if tail:
            yield tail


def _zstd_error():
    try:
        import zstandard

        return zstandard.ZstdError
    except ImportError:
        return OSError


def read_chunks(files, chunk_lines: int = 256, chunk_bytes: int = 1 << 22):
    """Yield (file_index, first_line_number, [raw lines]); a chunk never spans two files."""
    for fi, path in enumerate(files):
        n = 0
        try:
            with open_lines(path) as f:
                lines, first, size, n = [], 1, 0, 0
                for n, line in enumerate(f, 1):
                    lines.append(line)
                    size += len(line)
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
    json_key: str = "text"
    lang_key: str = "lang"
    lang_id: str = "field"
    relabel_lang: bool = False
    default_lang: str | None = None
    languages: tuple[str, ...] | None = None
    append_eod: bool = False


class _Worker:
    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.tok = build_tokenizer(spec.tokenizer_type, spec.tokenizer_model)
        self.detector = build_lang_id(spec.lang_id, spec.languages)
        self.dtype = token_dtype(self.tok.vocab_size)
        self.allowed = frozenset(spec.languages) if spec.languages else None

    def _lang(self, obj):
        """-> (lang, None) or (None, (reason, message))."""
        s = self.spec
        if self.detector is not None and (s.relabel_lang or s.lang_key not in obj):
            lang = self.detector.detect(obj[s.json_key]) or s.default_lang
            if lang is None:
                return None, ("undetected_language", f"--lang-id {s.lang_id} found no language")
        else:
            lang = normalize_lang(obj.get(s.lang_key)) or s.default_lang
            if lang is None:
                return None, (
                    "missing_language",
                    f"no usable {s.lang_key!r} field; pass --default-lang or --lang-id script|lingua",
                )
        if self.allowed is not None and lang not in self.allowed:
            return None, ("unknown_language", f"language {lang!r} is not in --languages")
        return lang, None

    def process(self, chunk):
        fi, first, lines = chunk
        key = self.spec.json_key
        docs, rejects, nbytes, blank = [], [], 0, 0
        for i, raw in enumerate(lines):
            nbytes += len(raw)
            line_no = first + i
            if not raw.strip():
                blank += 1
                continue
            try:
                obj = json.loads(raw)
            except UnicodeDecodeError as e:
                rejects.append(("invalid_utf8", fi, line_no, str(e)))
                continue
            except ValueError as e:
                rejects.append(("malformed_json", fi, line_no, str(e)))
                continue
            if not isinstance(obj, dict):
                rejects.append(("malformed_json", fi, line_no, f"expected a JSON object, got {type(obj).__name__}"))
                continue
            if key not in obj:
                rejects.append(("missing_text_key", fi, line_no, f"no {key!r} key (keys: {sorted(obj)[:8]})"))
                continue
            text = obj[key]
            if not isinstance(text, str):
                rejects.append(("text_not_string", fi, line_no, f"{key!r} is {type(text).__name__}, not a string"))
                continue
            if not text.strip():
                rejects.append(("empty_document", fi, line_no, f"{key!r} is empty or whitespace"))
                continue
            lang, why = self._lang(obj)
            if why is not None:
                rejects.append((why[0], fi, line_no, why[1]))
                continue
            ids = self.tok.tokenize(text)
            if not ids:
                rejects.append(("empty_document", fi, line_no, "tokenizes to no tokens"))
                continue
            if self.spec.append_eod:
                ids.append(self.tok.eod)
            docs.append((lang, np.asarray(ids, dtype=self.dtype)))
        return fi, docs, rejects, nbytes, blank


_WORKER: _Worker | None = None


def _init_worker(spec: WorkerSpec) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and cleans up
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
    """One IndexedDatasetBuilder per language, under temp names until `commit`."""

    def __init__(self, output_prefix: str, dtype, key: str = "text"):
        self.output_prefix, self.dtype, self.key = output_prefix, dtype, key
        self.builders: dict[str, object] = {}
        self.temps: list[str] = []
        self.tag = f".tmp-{os.getpid()}"

    def final_prefix(self, lang: str) -> str:
        return output_prefix_for(self.output_prefix, lang, self.key)

    def add(self, lang: str, ids: np.ndarray) -> None:
        b = self.builders.get(lang)
        if b is None:
            from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

            tmp_bin = self.final_prefix(lang) + ".bin" + self.tag
            self.temps.append(tmp_bin)
            b = self.builders[lang] = IndexedDatasetBuilder(tmp_bin, dtype=self.dtype)
        b.add_document(ids, [len(ids)])

    def commit(self) -> dict[str, str]:
        """Finalize all indices, then rename: every .bin first, each .idx after its .bin."""
        for lang, b in self.builders.items():
            tmp_idx = self.final_prefix(lang) + ".idx" + self.tag
            self.temps.append(tmp_idx)
            b.finalize(tmp_idx)
        for lang in self.builders:
            p = self.final_prefix(lang)
            # Drop an old .idx first: a new .bin beside a stale .idx would look complete.
            if os.path.exists(p + ".idx"):
                os.remove(p + ".idx")
            os.replace(p + ".bin" + self.tag, p + ".bin")
        for lang in self.builders:
            p = self.final_prefix(lang)
            os.replace(p + ".idx" + self.tag, p + ".idx")
        self.temps = []
        return {lang: self.final_prefix(lang) for lang in self.builders}

    def abort(self) -> None:
        for b in self.builders.values():
            try:
                b.data_file.close()
            except Exception:
                pass
        for t in self.temps:
            try:
                os.remove(t)
            except FileNotFoundError:
                pass
        self.temps = []


# ----------------------------------------------------------------------------- driver


@dataclass
class LangStats:
    documents: int = 0
    tokens: int = 0
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
        return "\n".join(out)


@dataclass
class PreprocessConfig:
    input: list
    output_prefix: str
    tokenizer_type: str
    tokenizer_model: str
    json_key: str = "text"
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

    def build(self) -> "Preprocessor":
        return Preprocessor(self)


class Preprocessor:
    def __init__(self, cfg: PreprocessConfig):
        if cfg.workers < 1:
            raise PreprocessError(f"--workers {cfg.workers}: must be >= 1")
        if cfg.relabel_lang and cfg.lang_id == "field":
            raise PreprocessError("--relabel-lang needs a detector: add --lang-id script or --lang-id lingua")
        self.cfg = cfg
        self.files = expand_inputs(cfg.input)
        self.spec = WorkerSpec(
            tokenizer_type=cfg.tokenizer_type,
            tokenizer_model=str(cfg.tokenizer_model),
            json_key=cfg.json_key,
            lang_key=cfg.lang_key,
            lang_id=cfg.lang_id,
            relabel_lang=cfg.relabel_lang,
            default_lang=normalize_lang(cfg.default_lang) if cfg.default_lang else None,
            languages=tuple(cfg.languages) if cfg.languages else None,
            append_eod=cfg.append_eod,
        )
        # Built here too so bad tokenizer/lang-id settings fail before any worker starts.
        self.worker = _Worker(self.spec)
        self.tokenizer = self.worker.tok

    def run(self, log=sys.stderr) -> Report:
        cfg, files = self.cfg, self.files
        Path(cfg.output_prefix).parent.mkdir(parents=True, exist_ok=True)
        writer = LanguageWriter(cfg.output_prefix, self.worker.dtype, cfg.json_key)
        stats: dict[str, LangStats] = {}
        rejected = {r: 0 for r in REJECT_REASONS}
        examples: dict[str, list[str]] = {}
        n_docs = n_tok = n_bytes = n_blank = n_lines_seen = 0
        t0 = time.perf_counter()
        next_log = cfg.log_interval
        chunks = read_chunks(files, cfg.chunk_lines)
        try:
            for fi, docs, rejects, nbytes, blank in _results(self.spec, chunks, cfg.workers, self.worker):
                for lang, ids in docs:
                    writer.add(lang, ids)
                    s = stats.get(lang) or stats.setdefault(lang, LangStats())
                    s.documents += 1
                    s.tokens += len(ids)
                    s.sources.add(fi)
                    n_tok += len(ids)
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
                if cfg.log_interval and n_lines_seen >= next_log:
                    dt = max(time.perf_counter() - t0, 1e-9)
                    print(
                        f"processed {n_lines_seen} docs ({n_docs / dt:.0f} docs/s, {n_tok / dt:.0f} tokens/s, "
                        f"{n_bytes / dt / 1e6:.2f} MB/s), rejected {sum(rejected.values())}",
                        file=log, flush=True,
                    )
                    next_log = (n_lines_seen // cfg.log_interval + 1) * cfg.log_interval
            # An old manifest must not describe outputs this run is replacing.
            manifest = Path(f"{cfg.output_prefix}.manifest.json")
            if manifest.exists():
                manifest.unlink()
            prefixes = writer.commit()
        except BaseException:
            writer.abort()
            raise
        languages = {
            lang: {
                "prefix": os.path.abspath(prefixes[lang]),
                "documents": s.documents,
                "tokens": s.tokens,
                "sources": [os.path.abspath(files[i]) for i in sorted(s.sources)],
            }
            for lang, s in sorted(stats.items())
        }
        report = Report(
            languages=languages,
            rejected=rejected,
            examples=examples,
            documents=n_docs,
            tokens=n_tok,
            bytes=n_bytes,
            blank_lines=n_blank,
            seconds=time.perf_counter() - t0,
        )
        report.manifest_path = self._write_manifest(report)
        return report

    def _write_manifest(self, report: Report) -> str:
        cfg = self.cfg
        manifest = {
            "tokenizer": self.tokenizer.identity(),
            "languages": report.languages,
            "rejected": report.rejected,
            "reject_examples": report.examples,
            "blank_lines": report.blank_lines,
            "dtype": np.dtype(self.worker.dtype).name,
            "json_key": cfg.json_key,
            "append_eod": cfg.append_eod,
            "lang_id": {
                "method": cfg.lang_id,
                "lang_key": cfg.lang_key,
                "relabel_lang": cfg.relabel_lang,
                "default_lang": self.spec.default_lang,
                "languages": list(self.spec.languages) if self.spec.languages else None,
            },
            "inputs": [os.path.abspath(f) for f in self.files],
        }
        path = f"{cfg.output_prefix}.manifest.json"
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
        return path
