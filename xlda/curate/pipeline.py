"""The curation pipeline as datatrove stages, run by LocalPipelineExecutor or SlurmPipelineExecutor.

Stages (each one executor = one SLURM job array, chained by dependencies; each keeps its
completion markers in <output>/.work/logs/<stage>/, so a rerun skips completed tasks):
  filter        read shards -> language ID -> per-language quality filters -> score
                -> <work>/filtered/<lang>/<rank>.jsonl.gz                      (T tasks)
  exact_sigs    exact-duplicate signatures per language                         (L x T)
  exact_find    exact duplicates per language                                   (L)
  minhash_sigs  drop exact duplicates, MinHash signatures                       (L x T)
  minhash_buckets, minhash_cluster                                              (sum buckets, L)
  final         drop exact + near duplicates, save score keys -> <work>/final   (L x T)
  anneal        exact top fraction per language by score -> <work>/anneal      (L' x T)
  publish       move outputs into place, write manifest.json last               (1)
Nothing appears under <output>/<lang>/ before every stage finished; manifest.json marks a
complete run.
"""
from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import shutil
import sys
import time
from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                      MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.dedup.exact_dedup import (ExactDedupConfig, ExactDedupFilter,
                                                  ExactDedupSignature, ExactFindDedups)
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter
from datatrove.utils.hashing import HashConfig

from xlda.curate.config import CurateConfig, CurateError
from xlda.curate.reader import ShardReader
from xlda.curate.reports import merge_reports
from xlda.curate.steps import (AnnealCut, CountDocs, KeyRecorder, LanguageFanout,
                               LanguageIdentifier, LanguageQualityFilter, QualityScorer,
                               flat_adapter)
from xlda.curate.words import ScriptWordTokenizer
from xlda.files import atomic_write

MANIFEST = "manifest.json"


def exact_text(doc) -> str:
    return doc.text


# sha1 (hashlib) rather than datatrove's default xxhash: xxhash>=4 refuses str input, which
# datatrove's MinHash shingles and exact signatures pass; sha1 needs no extra package.
HASH = HashConfig(precision=64, hash_fc="sha1")


def exact_config() -> ExactDedupConfig:
    return ExactDedupConfig(content_getter=exact_text, hash_config=HASH)


def expand_inputs(patterns) -> list[str]:
    files = []
    for p in patterns:
        hits = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
        if not hits:
            raise CurateError(f"--input {p!r} matches no file")
        for h in hits:
            if "://" not in h and not os.path.isfile(h):
                raise CurateError(f"--input {h}: no such file")
        files.extend(hits)
    if not files:
        raise CurateError("no input files (--input)")
    return files


def _env_command() -> str:
    # Jobs run this interpreter's environment (PATH for datatrove's launch_pickled_pipeline) and
    # import this checkout of xlda.
    bindir = os.path.dirname(sys.executable)
    repo = str(Path(__file__).resolve().parents[2])
    return f'export PATH="{bindir}:$PATH" PYTHONPATH="{repo}:${{PYTHONPATH:-}}"'


class CurationPipeline:
    def __init__(self, cfg: CurateConfig):
        self.cfg = cfg
        self.files = expand_inputs(cfg.inputs)
        self.langs = cfg.language_configs()
        self.out = Path(cfg.output_dir).resolve()
        self.work = self.out / ".work"
        self.tasks = cfg.tasks or len(self.files)
        self.ext = "parquet" if cfg.output_format == "parquet" else "jsonl.gz"

    # -- stage pipelines ---------------------------------------------------------------------
    def _reports(self, name: str) -> str:
        return str(self.work / "reports" / name)

    def _reader_for(self, lang: str, folder: str, ext: str = "jsonl.gz") -> ShardReader:
        # JsonlWriter names a task's file <rank>.jsonl.gz; ParquetWriter 000_<rank>.parquet, ...
        d = self.work / folder / lang
        return ShardReader(rank_file=(str(d / f"{{rank:05d}}.{ext}"), str(d / f"???_{{rank:05d}}.{ext}")))

    def _writer(self, folder: Path, fmt: str, filename: str = "${rank}"):
        if fmt == "parquet":
            return ParquetWriter(str(folder), output_filename=filename + ".parquet",
                                 adapter=flat_adapter)
        return JsonlWriter(str(folder), output_filename=filename + ".jsonl.gz",
                           adapter=flat_adapter, compression="gzip")

    def _minhash(self, lang: str) -> MinhashConfig:
        mh = dict(self.langs[lang].minhash)
        return MinhashConfig(n_grams=mh.get("n_grams", 5), num_buckets=mh.get("num_buckets", 14),
                             hashes_per_bucket=mh.get("hashes_per_bucket", 8), seed=mh.get("seed", 1),
                             hash_config=HASH)

    def _fan(self, make, tasks_of=None, langs=None) -> list:
        langs = list(langs if langs is not None else self.langs)
        branches = [(lang, (tasks_of(lang) if tasks_of else self.tasks), make(lang)) for lang in langs]
        return [LanguageFanout(branches)]

    def stages(self) -> list[tuple[str, list, int]]:
        c, w = self.cfg, self.work
        filt = [ShardReader(files=self.files, text_key=c.text_key, id_key=c.id_key, strict=c.strict,
                            report_dir=self._reports("read"), max_examples=c.max_examples),
                LanguageIdentifier(c.lang_id, {k: v.min_confidence for k, v in self.langs.items()},
                                   report_dir=self._reports("lang_id")),
                LanguageQualityFilter(self.langs, report_dir=self._reports("quality"))]
        if c.score_field or c.quality_model or c.heuristic_score:
            filt.append(QualityScorer(c.score_field, c.quality_model, c.quality_label,
                                      heuristic=c.heuristic_score,
                                      report_dir=self._reports("score")))
        filt.append(self._writer(w / "filtered", "jsonl", "${lang}/${rank}"))

        def ex(lang):
            return str(w / "exact" / lang)

        def mh(lang):
            return str(w / "minhash" / lang)

        def tag(lang):  # report file of a fan-out task: <lang>_<rank in the language>
            return lang + "_{rank:05d}"

        exact_sigs = self._fan(lambda L: [
            self._reader_for(L, "filtered"),
            ExactDedupSignature(ex(L) + "/sigs", exact_config(), finder_workers=1)])
        exact_find = self._fan(lambda L: [
            ExactFindDedups(ex(L) + "/sigs", ex(L) + "/dups", exact_config())], lambda L: 1)
        minhash_sigs = self._fan(lambda L: [
            self._reader_for(L, "filtered"),
            ExactDedupFilter(ex(L) + "/dups", exact_config()),
            MinhashDedupSignature(mh(L) + "/sigs", self._minhash(L), language=ScriptWordTokenizer(L))])
        buckets = self._fan(lambda L: [
            MinhashDedupBuckets(mh(L) + "/sigs", mh(L) + "/buckets", config=self._minhash(L))],
            lambda L: self._minhash(L).num_buckets)
        cluster = self._fan(lambda L: [
            MinhashDedupCluster(mh(L) + "/buckets", mh(L) + "/remove", config=self._minhash(L))], lambda L: 1)

        def final(L):
            steps = [self._reader_for(L, "filtered"),
                     ExactDedupFilter(ex(L) + "/dups", exact_config()),
                     CountDocs(report_dir=self._reports("after_exact"), report_tag=tag(L)),
                     MinhashDedupFilter(mh(L) + "/remove"),
                     CountDocs(report_dir=self._reports("after_minhash"), report_tag=tag(L))]
            if L in c.anneal_top:
                steps.append(KeyRecorder(str(w / "keys" / L / "{rank:05d}.npy")))
            return steps + [self._writer(w / "final" / L, c.output_format)]

        out = [("filter", filt, self.tasks),
               ("exact_sigs", exact_sigs, exact_sigs[0].world_size),
               ("exact_find", exact_find, exact_find[0].world_size),
               ("minhash_sigs", minhash_sigs, minhash_sigs[0].world_size),
               ("minhash_buckets", buckets, buckets[0].world_size),
               ("minhash_cluster", cluster, cluster[0].world_size)]
        fin = self._fan(final)
        out.append(("final", fin, fin[0].world_size))
        if c.anneal_top:
            anneal = self._fan(lambda L: [
                self._reader_for(L, "final", self.ext),
                AnnealCut(L, c.anneal_top[L], str(w / "keys" / L),
                          report_dir=self._reports("anneal"), report_tag=tag(L)),
                self._writer(w / "anneal" / L, c.output_format)], langs=list(c.anneal_top))
            out.append(("anneal", anneal, anneal[0].world_size))
        out.append(("publish", [Publish(self)], 1))
        return out

    # -- executors ---------------------------------------------------------------------------
    def executors(self, stages: list | None = None) -> list:
        """One executor per stage (`stages`: self.stages() when not given), each depending on
        the one before."""
        c = self.cfg
        prev, out = None, []
        for name, pipeline, tasks in (self.stages() if stages is None else stages):
            logs = str(self.work / "logs" / name)
            if c.executor == "local":
                from datatrove.executor import LocalPipelineExecutor

                workers = min(tasks, c.workers if c.workers > 0 else (os.cpu_count() or 1))
                # fork, not datatrove's default forkserver: workers inherit the imported modules
                # instead of re-importing them for each of the nine stages (seconds each).
                ex = LocalPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logs,
                                           depends=prev, start_method="fork")
            else:
                from datatrove.executor import SlurmPipelineExecutor

                if not c.partition:
                    raise CurateError("--executor slurm needs --partition")
                ex = SlurmPipelineExecutor(
                    pipeline, tasks=tasks, time=c.time, partition=c.partition,
                    cpus_per_task=c.cpus_per_task, mem_per_cpu_gb=c.mem_per_cpu_gb,
                    job_name=f"{c.job_name}-{name}", logging_dir=logs, depends=prev,
                    sbatch_args=dict(c.sbatch_args), env_command=c.env_command or _env_command(),
                    slurm_logs_folder=str(self.work / "slurm_logs" / name), mail_type="NONE",
                    tasks_per_job=c.tasks_per_job)
            out.append(ex)
            prev = ex
        return out

    def settings(self) -> dict:
        """What decides the result; a rerun into the same --output-dir must match it, since
        datatrove skips tasks by their completion markers alone."""
        c = self.cfg
        return {"inputs": self.files, "languages": {k: v.__dict__ for k, v in self.langs.items()},
                "lang_id": c.lang_id, "text_key": c.text_key, "id_key": c.id_key,
                "score_field": c.score_field, "quality_model": c.quality_model,
                "heuristic_score": c.heuristic_score, "quality_label": c.quality_label,
                "output_format": c.output_format,
                "anneal_top": {k: str(v) for k, v in c.anneal_top.items()}, "tasks": self.tasks}

    def _check_settings(self) -> None:
        path = self.work / "settings.json"
        mine = json.loads(json.dumps(self.settings()))
        if path.exists():
            old = json.loads(path.read_text())
            if old != mine:
                diff = sorted(k for k in set(old) | set(mine) if old.get(k) != mine.get(k))
                raise CurateError(f"{self.out} holds a run with other settings ({', '.join(diff)} "
                                  "differ); rerun with the same flags to resume, or use a new "
                                  "--output-dir")
        else:
            self.work.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(mine, indent=1, ensure_ascii=False, sort_keys=True))

    def run(self):
        """Local: runs everything and returns the manifest. SLURM: submits the chained job arrays
        and returns None (the publish job writes the manifest)."""
        self._check_settings()
        manifest = self.out / MANIFEST
        if manifest.exists():
            return json.loads(manifest.read_text())
        stages = self.stages()  # built once: the executors and the progress lines share them
        executors = self.executors(stages)
        if self.cfg.executor != "local":
            executors[-1].run()  # submits the chain of job arrays
            return None
        names = [name for name, _, _ in stages]
        with _quiet_datatrove(self.work / "logs" / "curate.log"):
            t0 = time.perf_counter()
            for k, (name, ex) in enumerate(zip(names, executors), 1):
                t = time.perf_counter()
                ex.run()  # its dependency is the previous stage, already complete
                print(f"[curate] stage {k}/{len(names)} {name}: {ex.world_size} tasks, "
                      f"{time.perf_counter() - t:.1f}s", flush=True)
            print(f"[curate] all stages done in {time.perf_counter() - t0:.1f}s; datatrove's "
                  f"logs: {self.work / 'logs'}", flush=True)
        return json.loads(manifest.read_text())


@contextlib.contextmanager
def _quiet_datatrove(log_file: Path):
    """datatrove logs every task's start, steps and stats tables to stderr (1,180 lines for a
    7 s run): send them to files, keep warnings and errors on stderr. Task processes get
    datatrove's own non-zero-local-rank logger (stderr at ERROR, the task log file at DEBUG);
    this process's executor messages go to `log_file`."""
    import datatrove.executor.base as base
    from loguru import logger

    orig_add, orig_close = base.add_task_logger, base.close_task_logger
    log_file.parent.mkdir(parents=True, exist_ok=True)

    def parent_sinks():
        logger.remove()
        logger.add(sys.stderr, level="WARNING")
        logger.add(str(log_file), level="DEBUG")

    def task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
        return orig_add(logging_dir, rank, 1, node_rank=node_rank)

    def close_task_logger(logfile):  # (a task run in this process: back to our sinks)
        logger.complete()
        parent_sinks()
        logfile.close()

    parent_sinks()
    base.add_task_logger, base.close_task_logger = task_logger, close_task_logger
    # datatrove's dedup steps draw tqdm bars on stderr ("Initializing pq...", "Reading dup
    # files": 12 lines a run); the stage line says the same. Forked task processes inherit this.
    import datatrove.pipeline.dedup.exact_dedup as exact_mod
    import datatrove.pipeline.dedup.minhash as minhash_mod
    import tqdm

    bars = {m: m.tqdm for m in (exact_mod, minhash_mod)}
    for m in bars:
        m.tqdm = functools.partial(tqdm.tqdm, disable=True)
    try:
        yield
    finally:
        base.add_task_logger, base.close_task_logger = orig_add, orig_close
        for m, bar in bars.items():
            m.tqdm = bar
        logger.remove()
        logger.add(sys.stderr)  # loguru's default sink, as found


class Publish(PipelineStep):
    """Last stage: moves <work>/final and <work>/anneal into <output>, then writes manifest.json
    (temp file + rename) from all tasks' reports. Idempotent, so a rerun after a crash in the
    middle finishes the job."""

    name = "xlda publish"
    type = "📦 - PUBLISH"

    def __init__(self, pipe: CurationPipeline):
        super().__init__()
        self.out, self.work, self.cfg = pipe.out, pipe.work, pipe.cfg
        self.langs, self.files, self.ext = list(pipe.langs), pipe.files, pipe.ext

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        rep = {n: merge_reports(self.work / "reports" / n, self.cfg.max_examples)
               for n in ("read", "lang_id", "quality", "score", "after_exact", "after_minhash",
                         "anneal")}
        langs = {}
        for L in self.langs:
            entry = self._move(self.work / "final" / L, self.out / L)
            q = rep["quality"]["counts"].get(L, {})
            lid = rep["lang_id"]["counts"].get(L, {})
            missing = rep["score"]["counts"].get(L, {}).get("missing_score", 0)
            scored = q.get("kept", 0) - missing
            after_exact = rep["after_exact"]["counts"].get(L, {}).get("documents", 0)
            after_mh = rep["after_minhash"]["counts"].get(L, {}).get("documents", 0)
            dropped = {k: v for k, v in {**lid, **q}.items() if k not in ("identified", "kept")}
            dropped.update({"missing_score": missing,
                            "exact_duplicate": scored - after_exact,
                            "near_duplicate": after_exact - after_mh})
            seen = {r: ex for n in ("lang_id", "quality", "score")
                    for r, ex in rep[n]["lang_examples"].get(L, {}).items()}
            entry.update({"documents": after_mh, "identified": lid.get("identified", 0),
                          "dropped": {k: v for k, v in sorted(dropped.items()) if v},
                          # a few document ids per filter reason (dedup drops: see the dups files)
                          "drop_examples": {k: seen[k] for k in sorted(seen)}})
            if L in self.cfg.anneal_top:
                a = self._move(self.work / "anneal" / L, self.out / "anneal" / L)
                extra = next((v for k, v in rep["anneal"]["extra"].items() if k.startswith(L + "_")), {})
                a.update({"fraction": str(self.cfg.anneal_top[L]),
                          "documents": rep["anneal"]["counts"].get(L, {}).get("annealing", 0),
                          "of": extra.get("total", 0)})
                entry["anneal"] = a
            langs[L] = entry
        manifest = {
            "inputs": self.files, "format": self.cfg.output_format, "languages": langs,
            "lang_id": self.cfg.lang_id,
            "score": ({"field": self.cfg.score_field} if self.cfg.score_field else
                      {"quality_model": self.cfg.quality_model} if self.cfg.quality_model else
                      {"heuristic": "xlda.curate.heuristic"} if self.cfg.heuristic_score else None),
            "rejected": rep["read"]["counts"].get("all", {}),
            "rejected_examples": rep["read"]["examples"],
            "unlabelled": {k: v for k, v in rep["lang_id"]["counts"].items() if k not in self.langs},
        }
        atomic_write(self.out / MANIFEST,
                     json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True))
        return iter(())

    def _move(self, src: Path, dst: Path) -> dict:
        if src.exists():
            if dst.exists():  # a previous publish attempt moved part of it: redo from the work copy
                shutil.rmtree(dst)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        files = sorted(str(p.relative_to(self.out)) for p in dst.glob(f"*.{self.ext}")) if dst.exists() else []
        return {"files": files}
