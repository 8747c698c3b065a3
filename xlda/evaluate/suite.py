"""Benchmark suites: a YAML the user edits, naming lm-eval tasks with their language and the
metric the tables report, plus the parallel task pairs cross-lingual consistency compares.

    suite: trillion
    tasks:
      - {task: kobest, language: ko, metric: acc}           # an lm-eval task, group or tag
      - {task: gsm8k, language: en, metric: "exact_match,strict-match"}
    consistency:
      - [belebele_eng_Latn, belebele_kor_Hang]              # the same items in two languages
    include_path: [tasks]   # optional: task YAML folders, relative to this file
    data_dir: data          # optional: the --data-dir default, relative to this file

Offline by design (``resolve``): with a data directory, every task whose ``dataset_path`` is a
Hub id ``org/name`` reads ``DATA_DIR/org/name`` instead (what ``huggingface-cli download
--repo-type dataset org/name --local-dir DATA_DIR/org/name`` writes), through lm-eval's own
task configs with only ``dataset_path`` replaced; every missing folder is named, with the
command that fetches it, before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from xlda.evaluate.session import EvalError

SUITES_DIR = Path(__file__).with_name("suites")
LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "imagefolder"}


@dataclass(frozen=True)
class SuiteTask:
    task: str  # an lm-eval task, group or tag name
    language: str
    # a key of lm-eval's results, "<metric>,<filter>"; None: the task's first metric
    metric: Optional[str] = "acc,none"


@dataclass
class Suite:
    name: str
    tasks: list
    consistency: list = field(default_factory=list)  # [(task_a, task_b)]
    path: Optional[Path] = None
    include_path: list = field(default_factory=list)  # task YAML folders the suite needs
    data_dir: Optional[Path] = None  # where its datasets are when --data-dir is not given

    @property
    def task_names(self) -> list:
        return [t.task for t in self.tasks]


def suite_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise EvalError(f"--suite {p}: file not found")
        return p
    shipped = SUITES_DIR / f"{name_or_path}.yaml"
    if not shipped.is_file():
        names = sorted(f.stem for f in SUITES_DIR.glob("*.yaml"))
        raise EvalError(f"--suite {name_or_path}: not a file and not a shipped suite ({', '.join(names)})")
    return shipped


def load_suite(name_or_path: str) -> Suite:
    import yaml

    path = suite_path(name_or_path)
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise EvalError(f"suite {path}: invalid YAML: {e}") from None
    if not isinstance(d, dict) or not isinstance(d.get("tasks"), list) or not d["tasks"]:
        raise EvalError(f"suite {path}: expected a mapping with a non-empty 'tasks' list")
    unknown = sorted(set(d) - {"suite", "tasks", "consistency", "include_path", "data_dir"})
    if unknown:
        raise EvalError(f"suite {path}: unknown key(s) {unknown}")
    tasks = []
    for i, t in enumerate(d["tasks"], 1):
        if not isinstance(t, dict) or not t.get("task") or not t.get("language"):
            raise EvalError(f"suite {path}: tasks entry {i} needs 'task' and 'language' (got {t!r})")
        unknown = sorted(set(t) - {"task", "language", "metric"})
        if unknown:
            raise EvalError(f"suite {path}: tasks entry {i} ({t['task']}): unknown key(s) {unknown}")
        metric = str(t.get("metric", "acc"))
        tasks.append(SuiteTask(str(t["task"]), str(t["language"]),
                               metric if "," in metric else f"{metric},none"))
    names = [t.task for t in tasks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise EvalError(f"suite {path}: task(s) listed twice: {dup}")
    pairs = []
    for i, p in enumerate(d.get("consistency") or [], 1):
        if not (isinstance(p, list) and len(p) == 2 and all(x in names for x in p)):
            raise EvalError(f"suite {path}: consistency entry {i} {p!r}: expected [task_a, task_b], "
                            "both listed under tasks")
        pairs.append((str(p[0]), str(p[1])))
    here = path.parent
    include = [here / p for p in (d.get("include_path") or [])]
    for inc in include:
        if not inc.is_dir():
            raise EvalError(f"suite {path}: include_path {inc}: no such directory")
    data_dir = here / d["data_dir"] if d.get("data_dir") else None
    if data_dir is not None and not data_dir.is_dir():
        raise EvalError(f"suite {path}: data_dir {data_dir}: no such directory")
    return Suite(str(d.get("suite") or path.stem), tasks, pairs, path, include, data_dir)


OFFLINE = (("datasets.config", "HF_DATASETS_OFFLINE"), ("datasets.config", "HF_HUB_OFFLINE"),
           ("huggingface_hub.constants", "HF_HUB_OFFLINE"))


def go_offline() -> None:
    """No Hub access from here on: the environment (read when datasets/huggingface_hub are
    imported) and, if they already are, their constants."""
    import os
    import sys

    os.environ["HF_DATASETS_OFFLINE"] = os.environ["HF_HUB_OFFLINE"] = "1"
    for module, name in OFFLINE:
        m = sys.modules.get(module)
        if m is not None and hasattr(m, name):
            setattr(m, name, True)


def task_manager(include_path=None, include_defaults: bool = True):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(p) for p in include_path] if include_path else None,
                       include_defaults=include_defaults)


def _config(entry) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(entry.yaml_path, resolve_func=True) if entry.yaml_path else dict(entry.cfg)


class Resolver:
    """Suite task names -> lm-eval task specs reading their data from ``data_dir``."""

    def __init__(self, tm, data_dir: Optional[Path]):
        self.tm, self.data_dir = tm, Path(data_dir) if data_dir else None
        self.missing: list = []  # (task, dataset id, folder)

    def spec(self, name: str, suite: str):
        from lm_eval.tasks._index import Kind

        entry = self.tm.task_index.get(name)
        if entry is None:
            raise EvalError(f"suite {suite}: {name!r} is not an lm-eval task, group or tag known "
                            f"here ({len(self.tm.all_tasks)} are; `lm-eval ls tasks` lists them); "
                            "a task of your own: its YAML folder with --include-path")
        if self.data_dir is None or entry.kind == Kind.PY_TASK:
            return name
        if entry.kind == Kind.TAG:  # a tag's entry lists its member tasks
            return [self.spec(n, suite) for n in sorted(entry.tags)]
        if not entry.yaml_path and not entry.cfg:
            return name
        cfg = _config(entry)
        if entry.kind == Kind.GROUP:
            children = []
            for child in cfg.get("task") or []:
                got = self.spec(child, suite) if isinstance(child, str) else self._leaf(child)
                children += got if isinstance(got, list) else [got]
            cfg["task"] = children
            cfg.setdefault("group", name)
            return cfg
        return self._leaf(cfg)

    def _leaf(self, cfg: dict) -> dict:
        cfg = dict(cfg)
        cfg.pop("tag", None)  # the task is built inline: its tags would register it twice
        path = cfg.get("dataset_path")
        if not path or path in LOCAL_BUILDERS or Path(path).is_absolute():
            return cfg
        local = (self.data_dir / path).absolute()
        if not local.exists():
            self.missing.append((cfg.get("task"), path, local))
        cfg["dataset_path"] = str(local)
        return cfg

    def check(self) -> None:
        if not self.missing:
            return
        task, ds, where = self.missing[0]
        more = sorted({m[1] for m in self.missing[1:]} - {ds})
        raise EvalError(
            f"task {task} reads dataset {ds}, not found at {where}: on a machine with network "
            f"access run `huggingface-cli download --repo-type dataset {ds} --local-dir {where}` "
            "and copy the folder here" + (f" ({len(more)} more missing: {', '.join(more)})" if more else ""))


def resolve(suite: Suite, tm, data_dir: Optional[Path]) -> list:
    """lm-eval task specs (names, or inline configs reading ``data_dir``) of the suite's tasks."""
    r = Resolver(tm, data_dir)
    specs = [r.spec(t.task, suite.name) for t in suite.tasks]
    r.check()
    return specs


def open_suite(name_or_path: str, include_path=(), data_dir: Optional[Path] = None) -> tuple:
    """(suite, task manager, data dir, specs): the suite loaded, its task YAML folders indexed
    (the suite's own, then ``include_path``), its data resolved (``data_dir``, else the suite's
    own) with every missing dataset named."""
    suite = load_suite(name_or_path)
    tm = task_manager([*suite.include_path, *include_path])
    data_dir = Path(data_dir) if data_dir else suite.data_dir
    return suite, tm, data_dir, resolve(suite, tm, data_dir)


def build_tasks(tm, specs: list, names: list) -> list:
    """Build lm-eval's Task/Group objects (this reads the datasets), naming the task whose data
    cannot be read."""
    load_one = getattr(tm, "_load_spec", None)  # lm-eval 0.4.13; elsewhere: built by lm-eval
    if load_one is None:
        return specs
    built = []
    for name, spec in zip(names, specs):
        try:
            built.append(load_one(spec))
        except EvalError:
            raise
        except Exception as e:  # datasets' errors: offline misses, missing files, bad configs
            raise EvalError(
                f"task {name}: its data could not be loaded ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:300] if str(e) else ''}); offline, pass --data-dir with "
                "the dataset folders (docs/evaluate.md), or --allow-download") from None
    out = []
    for b in built:
        out += b if isinstance(b, list) else [b]
    return out
