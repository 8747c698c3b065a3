"""Suite YAMLs and offline task data (xlda.evaluate.suite)."""
import pytest

from xlda.evaluate.session import EvalError
from xlda.evaluate.suite import Resolver, load_suite, resolve, task_manager


def _suite(tmp_path, text):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("text,says", [
    ("tasks: []", "non-empty 'tasks' list"),
    ("tasks: [{task: a}]", "tasks entry 1 needs 'task' and 'language'"),
    ("tasks: [{task: a, language: en, metrc: acc}]", "tasks entry 1 (a): unknown key(s) ['metrc']"),
    ("tasks: [{task: a, language: en}, {task: a, language: ko}]", "task(s) listed twice: ['a']"),
    ("tasks: [{task: a, language: en}]\nconsistency: [[a, b]]",
     "consistency entry 1 ['a', 'b']: expected [task_a, task_b], both listed under tasks"),
    ("tasks: [", "invalid YAML"),
])
def test_bad_suites_are_named(tmp_path, text, says):
    with pytest.raises(EvalError, match=None) as e:
        load_suite(_suite(tmp_path, text))
    assert says in str(e.value)


def test_suite_fields_and_metric_filter_default(tmp_path):
    s = load_suite(_suite(tmp_path, "suite: x\ntasks:\n  - {task: a, language: en}\n"
                                    "  - {task: b, language: ko, metric: 'exact_match,strict-match'}\n"
                                    "consistency: [[a, b]]\n"))
    assert s.name == "x" and s.task_names == ["a", "b"]
    assert [t.metric for t in s.tasks] == ["acc,none", "exact_match,strict-match"]
    assert s.consistency == [("a", "b")]


def test_the_shipped_trillion_suite_names_real_lm_eval_tasks(tmp_path):
    s = load_suite("trillion")
    assert {t.language for t in s.tasks} == {"en", "ko", "ja", "zh"}
    tm = task_manager()
    assert [n for n in s.task_names if n not in tm.task_index] == []
    # every task's Hub dataset is found through --data-dir (here: none present, all named)
    r = Resolver(tm, tmp_path)
    for t in s.tasks:
        r.spec(t.task, s.name)
    wanted = {ds for _, ds, _ in r.missing}
    assert {"Rowan/hellaswag", "skt/kobest_v1", "HAERAE-HUB/KMMLU", "haonan-li/cmmlu",
            "Rakuten/JGLUE", "facebook/belebele", "openai/gsm8k", "cais/mmlu"} <= wanted
    assert all(str(where) == str(tmp_path / ds) for _, ds, where in r.missing)
    # groups and tags expand to their tasks: kmmlu's 45 subjects each read the dataset
    assert sum(ds == "HAERAE-HUB/KMMLU" for _, ds, _ in r.missing) == 45


def test_data_dir_replaces_a_hub_id_and_names_what_is_missing(toy_tasks, tmp_path):
    from xlda.evaluate.suite import Suite, SuiteTask

    tm = task_manager([toy_tasks["tasks"]], include_defaults=False)
    suite = Suite("t", [SuiteTask("toy_mc_en", "en"), SuiteTask("toy_group", "all")])
    specs = resolve(suite, tm, toy_tasks["data"])
    assert specs[0]["dataset_path"] == "json"  # a builder with its own data_files: as is
    ko = [c for c in specs[1]["task"] if c["task"] == "toy_mc_ko"][0]
    assert ko["dataset_path"] == str(toy_tasks["data"] / "xlda-test" / "toy_mc_ko")
    with pytest.raises(EvalError) as e:
        resolve(suite, tm, tmp_path)
    assert str(e.value).startswith(
        f"task toy_mc_ko reads dataset xlda-test/toy_mc_ko, not found at "
        f"{tmp_path / 'xlda-test' / 'toy_mc_ko'}: on a machine with network access run "
        f"`huggingface-cli download --repo-type dataset xlda-test/toy_mc_ko --local-dir")


def test_an_unknown_task_is_named(toy_tasks):
    from xlda.evaluate.suite import Suite, SuiteTask

    tm = task_manager([toy_tasks["tasks"]], include_defaults=False)
    with pytest.raises(EvalError, match="suite t: 'nope' is not an lm-eval task"):
        resolve(Suite("t", [SuiteTask("nope", "en")]), tm, None)


def test_offline_without_data_names_the_task(toy_tasks, monkeypatch):
    import importlib

    from xlda.evaluate.suite import OFFLINE, Suite, SuiteTask, build_tasks, go_offline

    for module, name in OFFLINE:  # restored after the test
        monkeypatch.setattr(importlib.import_module(module), name, False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    go_offline()  # no network here either way: offline, the miss is immediate
    tm = task_manager([toy_tasks["tasks"]], include_defaults=False)
    suite = Suite("t", [SuiteTask("toy_mc_ko", "ko")])
    with pytest.raises(EvalError, match="task toy_mc_ko: its data could not be loaded"):
        build_tasks(tm, resolve(suite, tm, None), suite.task_names)
