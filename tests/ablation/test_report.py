"""Aggregation and output of the ablation on hand-built rows with exact expected values."""
import csv
import math
import struct

import pytest

from xlda.ablation import report


def _row(mask, seed, metric, lang, loss, eval_mask=None):
    return {"mask": mask, "seed": seed, "metric": metric, "eval_mask": eval_mask or mask,
            "lang": lang, "loss": loss, "tokens": 10}


def _rows():
    rows = []
    vals = {("xlda", "ko"): [1.0, 2.0, 4.0], ("xlda", "en"): [3.0, 3.0, 3.0],
            ("causal", "ko"): [2.0, 2.5, 3.0], ("causal", "en"): [1.5, 0.5, 1.0]}
    for (mask, lang), xs in vals.items():
        for seed, x in enumerate(xs, 1):
            rows.append(_row(mask, seed, "packed", lang, x))
            # a cross-mask evaluation: kept in the CSV, not in the summary
            rows.append(_row(mask, seed, "packed", lang, 99.0, eval_mask="document"))
    rows.append(_row("xlda", 1, "isolated", "ko", 5.0))
    return rows


def _probe_rows():
    """Three seeds x {xlda, document}: transfer xlda ko = 0.3, 0.1, 0.2; document 0 (equal
    losses); packed xlda - document = -0.1, -0.2, -0.3 (xlda lower on every seed)."""
    rows = []
    for seed, (a, b) in enumerate([(2.0, 2.3), (2.2, 2.3), (2.1, 2.3)], 1):
        rows += [_row("xlda", seed, "probe_translation", "ko", a),
                 _row("xlda", seed, "probe_unrelated", "ko", b),
                 _row("xlda", seed, "probe_none", "ko", 2.5)]
        rows += [_row("document", seed, f"probe_{c}", "ko", 2.4) for c in
                 ("translation", "unrelated", "none")]
        rows += [_row("xlda", seed, "packed", "ko", 3.0 - 0.1 * seed),
                 _row("document", seed, "packed", "ko", 3.0)]
    return rows


def test_aggregate_exact_own_mask_korean_first():
    s = report.aggregate(_rows())
    key = [(x["metric"], x["mask"], x["lang"]) for x in s]
    assert key == [("packed", "xlda", "ko"), ("packed", "xlda", "en"), ("packed", "causal", "ko"),
                   ("packed", "causal", "en"), ("isolated", "xlda", "ko")]
    xk = s[0]
    assert (xk["n"], xk["min"], xk["max"]) == (3, 1.0, 4.0)
    assert xk["mean"] == pytest.approx(7 / 3) and xk["std"] == pytest.approx(math.sqrt(7 / 3))
    assert (s[1]["mean"], s[1]["std"]) == (3.0, 0.0)
    assert s[3]["mean"] == pytest.approx(1.0) and s[3]["std"] == pytest.approx(0.5)


def test_csv_round_trip_and_markdown(tmp_path):
    rows = _rows()
    p = report.write_csv(rows, tmp_path / "sub" / "runs.csv", report.RUN_FIELDS)
    with open(p, newline="") as f:
        back = list(csv.DictReader(f))
    assert back[0] == {"mask": "xlda", "seed": "1", "metric": "packed", "eval_mask": "xlda",
                       "lang": "ko", "loss": "1.000000", "tokens": "10"}
    assert [x["mean"] for x in report.aggregate(back)] == pytest.approx(
        [x["mean"] for x in report.aggregate(rows)])
    s = report.aggregate(rows)
    assert report.markdown_table(s, "packed") == (
        "| mask | ko | en |\n|---|---|---|\n"
        "| xlda | 2.3333 ± 1.5275 [1.0000, 4.0000] | 3.0000 ± 0.0000 [3.0000, 3.0000] |\n"
        "| causal | 2.5000 ± 0.5000 [2.0000, 3.0000] | 1.0000 ± 0.5000 [0.5000, 1.5000] |")


def test_cross_mask_table_exact():
    assert report.cross_mask_table(_rows(), "en") == (
        "| trained \\ evaluated | xlda | document | causal |\n|---|---|---|---|\n"
        "| xlda | 3.0000 ± 0.0000 | 99.0000 ± 0.0000 | - |\n"
        "| causal | - | 99.0000 ± 0.0000 | 1.0000 ± 0.5000 |")


def test_transfer_is_unrelated_minus_translation_per_run():
    t = report.values(_probe_rows(), "transfer")
    assert t == {("xlda", 1, "ko"): pytest.approx(0.3), ("xlda", 2, "ko"): pytest.approx(0.1),
                 ("xlda", 3, "ko"): pytest.approx(0.2), ("document", 1, "ko"): 0.0,
                 ("document", 2, "ko"): 0.0, ("document", 3, "ko"): 0.0}
    assert report.values(_probe_rows(), "packed")[("xlda", 2, "ko")] == pytest.approx(2.8)


def test_paired_rows_tables_and_conclusions_exact():
    rows = _probe_rows()
    pr = report.paired_rows(rows, "document")
    got = {(r["metric"], r["mask"], r["key"]): r for r in pr}
    assert set(got) == {("packed", "xlda", "ko"), ("transfer", "xlda", "ko")}
    p = got[("packed", "xlda", "ko")]  # differences -0.1, -0.2, -0.3: mean -0.2, sd 0.1
    assert p["mean"] == pytest.approx(-0.2) and p["lower"] == 3
    assert (p["ci_lo"], p["ci_hi"]) == (pytest.approx(-0.3), pytest.approx(-0.1))
    h = 4.3027 * 0.1 / math.sqrt(3)  # t(0.975, 2) sd / sqrt(n) = 0.2484: the t-interval holds 0
    assert (p["t_lo"], p["t_hi"]) == (pytest.approx(-0.2 - h), pytest.approx(-0.2 + h))
    assert not p["excludes_zero"]
    t = got[("transfer", "xlda", "ko")]  # 0.3, 0.1, 0.2 against the document mask's 0
    assert t["mean"] == pytest.approx(0.2) and t["lower"] == 0
    assert report.paired_table(pr, "packed") == (
        "| mask - document | ko |\n|---|---|\n"
        "| xlda | -0.2000 [-0.3000, -0.1000] (t [-0.4484, +0.0484]) includes 0 (lower 3/3) |")
    assert report.probe_table(rows).splitlines()[2:] == [
        "| xlda | ko | 2.1000 | 2.3000 | 2.5000 | +0.20000 ± 0.10000 | 3/3 |",
        "| document | ko | 2.4000 | 2.4000 | 2.4000 | +0.00000 ± 0.00000 | 0/3 |"]
    lines = report.conclusions(pr, rows)
    assert lines[0] == ("- packed held-out loss, own mask (lower is better), ko: xlda - document "
                        "-0.2000, bootstrap [-0.3000, -0.1000], t [-0.4484, +0.0484]: bootstrap "
                        "interval excludes 0 but the t-interval does not: not detected")
    assert lines[1].startswith("- in-context transfer = loss(unrelated) - loss(translation) "
                               "(higher = more transfer), ko: xlda - document +0.2000")
    assert lines[-1].endswith("largest |transfer| over its runs and languages = 0.00e+00")
    # a fourth seed with the same step makes both intervals exclude 0
    rows += [_row("xlda", 4, "packed", "ko", 2.6), _row("document", 4, "packed", "ko", 3.0)]
    p = {(r["metric"], r["mask"]): r for r in report.paired_rows(rows, "document")}[
        ("packed", "xlda")]
    assert p["excludes_zero"] and report.conclusions([p], rows)[0].endswith("excludes 0: xlda lower")


def test_plot_writes_a_png_with_a_panel_per_quantity(tmp_path):
    rows = _probe_rows() + [_row(m, s, "isolated", "ko", 1.0 + s) for m in ("xlda", "document")
                            for s in (1, 2, 3)]
    p = report.plot(report.paired_rows(rows, "document"), rows, tmp_path / "a.png")
    head = p.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (1650, 400)  # three 5.5 x 4 in panels, 100 dpi
