"""The curation reader: JSONL (.gz/.zst/plain) and Parquet shards as a datatrove reader step.

datatrove's JsonlReader skips a malformed line with a log warning; curation, like
tools/preprocess_data.py, must count every rejected record per reason with `file:line` (or
`file:row-group:row`) examples and fail under --strict, so the record decoding lives here. Files
are opened through fsspec as datatrove's readers do (local paths, s3://, ...; compression from
the extension).
"""
from __future__ import annotations

import glob

import fsspec
import orjson
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from xlda.curate.config import CurateError
from xlda.curate.reports import TaskReport

# Every way a record can fail to become a document; counted, reported, fatal under --strict.
REJECT_REASONS = ("malformed_json", "invalid_utf8", "not_an_object", "missing_text_key",
                  "text_not_string", "empty_document", "unreadable_file")
PARQUET_EXT = (".parquet", ".pq")


def is_parquet(path: str) -> bool:
    return path.endswith(PARQUET_EXT)


class ShardReader(PipelineStep):
    """Reads `files` round-robin across ranks (file i goes to rank i % world_size), or the files
    of `rank_file.format(rank=rank)` (the previous stage's output of this rank, a glob pattern:
    datatrove's ParquetWriter prefixes a file counter, NNN_<rank>.parquet; absent = empty)."""

    name = "xlda shard reader"
    type = "📖 - READER"

    def __init__(self, files: list[str] | None = None, rank_file: str | tuple | None = None,
                 text_key: str = "text", id_key: str = "id", strict: bool = False,
                 report_dir: str | None = None, report_tag: str = "{rank:05d}",
                 max_examples: int = 5):
        super().__init__()
        self.files, self.rank_file = files, rank_file
        self.text_key, self.id_key = text_key, id_key
        self.strict, self.report_dir, self.report_tag = strict, report_dir, report_tag
        self.max_examples = max_examples

    def _my_files(self, rank: int, world_size: int) -> list[str]:
        if self.rank_file is not None:
            pats = (self.rank_file,) if isinstance(self.rank_file, str) else self.rank_file
            return sorted({f for p in pats for f in glob.glob(p.format(rank=rank))})
        return self.files[rank::world_size]

    def _reject(self, report: TaskReport, reason: str, where: str, msg: str) -> None:
        if self.strict:
            raise CurateError(f"{where}: {reason}: {msg} (--strict: stopping; nothing published)")
        report.add("all", reason, f"{where}: {msg}")
        self.stat_update(f"rejected_{reason}")

    def _document(self, obj, where: str, report: TaskReport) -> Document | None:
        if not isinstance(obj, dict):
            self._reject(report, "not_an_object", where, f"a JSON {type(obj).__name__}, not an object")
            return None
        if self.text_key not in obj:
            self._reject(report, "missing_text_key", where, f"no {self.text_key!r} field "
                         f"(keys: {sorted(obj)[:8]}; pass --text-key)")
            return None
        text = obj.pop(self.text_key)
        if not isinstance(text, str):
            self._reject(report, "text_not_string", where, f"{self.text_key!r} is a {type(text).__name__}")
            return None
        if not text.strip():
            self._reject(report, "empty_document", where, "text is empty or whitespace")
            return None
        doc_id = obj.pop(self.id_key, None)
        return Document(text=text, id=str(doc_id) if doc_id is not None else where, metadata=obj)

    def _read_jsonl(self, path: str, report: TaskReport):
        with fsspec.open(path, "rb", compression="infer") as f:
            for line_no, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                where = f"{path}:{line_no}"
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    self._reject(report, "invalid_utf8", where, str(e))
                    continue
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError as e:
                    self._reject(report, "malformed_json", where, str(e))
                    continue
                doc = self._document(obj, where, report)
                if doc is not None:
                    yield doc

    def _read_parquet(self, path: str, report: TaskReport):
        import pyarrow.parquet as pq

        with fsspec.open(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            for g in range(pf.num_row_groups):
                for i, obj in enumerate(pf.read_row_group(g).to_pylist()):
                    doc = self._document(obj, f"{path}:row-group {g}:row {i}", report)
                    if doc is not None:
                        yield doc

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data
        report = TaskReport(self.max_examples)
        for path in self._my_files(rank, world_size):
            read = self._read_parquet if is_parquet(path) else self._read_jsonl
            try:
                for doc in read(path, report):
                    self.stat_update("documents")
                    yield doc
            except CurateError:
                raise
            except Exception as e:  # a truncated .gz/.zst, a corrupt Parquet footer, ...
                self._reject(report, "unreadable_file", path,
                             f"{type(e).__name__}: {e} (documents before the error were kept)")
        if self.report_dir:
            report.write(self.report_dir, self.report_tag.format(rank=rank))
