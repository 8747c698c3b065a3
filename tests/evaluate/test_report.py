"""Suite tables, averages and cross-lingual consistency from hand-built lm-eval results."""
import pytest

from xlda.evaluate.report import averages, by_language, consistency, format_report, suite_report
from xlda.evaluate.session import EvalError
from xlda.evaluate.suite import Suite, SuiteTask


def _mc(doc_id, lls):
    return {"doc_id": doc_id, "filtered_resps": [(ll, False) for ll in lls]}


RESULTS = {
    "results": {"a": {"acc,none": 0.5}, "b": {"acc,none": 0.25, "acc_norm,none": 0.3},
                "c": {"exact_match,strict-match": 1.0}},
    "groups": {},
    "n-samples": {"a": {"original": 4, "effective": 4}, "b": {"original": 4, "effective": 4},
                  "c": {"original": 2, "effective": 2}},
    "samples": {
        "a": [_mc(0, [-1, -2, -3]), _mc(1, [-3, -1, -2]), _mc(2, [-1, -2, -3]), _mc(3, [-2, -1, -3])],
        "b": [_mc(0, [-1, -2, -3]), _mc(1, [-1, -3, -2]), _mc(2, [-3, -2, -1]), _mc(3, [-2, -1, -3])],
    },
}
SUITE = Suite("s", [SuiteTask("a", "en"), SuiteTask("b", "ko"),
                    SuiteTask("c", "en", "exact_match,strict-match")], [("a", "b")])


def test_tables_by_hand():
    rep = suite_report(RESULTS, SUITE)
    assert [(t["task"], t["score"], t["n"]) for t in rep["tasks"]] == [
        ("a", 0.5, 4), ("b", 0.25, 4), ("c", 1.0, 2)]
    en = rep["languages"]["en"]
    assert en["macro"] == pytest.approx(0.75) and en["micro"] == pytest.approx((2 + 2) / 6)
    assert rep["average"]["macro"] == pytest.approx(1.75 / 3)
    assert rep["average"]["micro"] == pytest.approx((2 + 1 + 2) / 10) and rep["average"]["n"] == 10
    # chosen answers a: 0,1,0,1 ; b: 0,0,2,1 -> docs 0 and 3 agree
    assert rep["consistency"] == [{"pair": ["a", "b"], "consistency": 0.5, "n": 4}]
    text = format_report(rep)
    assert "consistency a / b: 0.5000 (4 items)" in text and "macro" in text


def test_a_metric_the_task_lacks_is_named():
    bad = Suite("s", [SuiteTask("b", "ko", "f1,none")], [], None)
    with pytest.raises(EvalError, match=r"task b reports no 'f1,none' \(it reports \['acc,none', 'acc_norm,none'\]\)"):
        suite_report(RESULTS, bad)


def test_group_items_are_its_tasks():
    res = {"results": {"a": {"acc,none": 1.0}, "b": {"acc,none": 0.0}},
           "groups": {"g": {"acc,none": 0.5}}, "group_subtasks": {"g": ["a", "b"]},
           "n-samples": {"a": {"effective": 3}, "b": {"effective": 5}}}
    rep = suite_report(res, Suite("s", [SuiteTask("g", "en")]))
    assert rep["tasks"][0]["n"] == 8 and rep["tasks"][0]["score"] == 0.5


def test_consistency_needs_the_same_items():
    with pytest.raises(EvalError, match="scored different items"):
        consistency([_mc(0, [0, 1])], [_mc(1, [0, 1])], "a", "b")


def test_averages_of_nothing():
    assert averages([])["n"] == 0 and by_language([]) == {}
