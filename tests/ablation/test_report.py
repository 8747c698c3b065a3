"""Aggregation and output of the ablation on hand-built rows with exact expected values."""
import csv
import math
import struct

import pytest

from xlda.ablation import report
from xlda.ablation.report import Endpoint

MASK = {"A": "xlda", "B": "document", "C": "xlda"}


def _row(arm, seed, metric, lang, loss, eval_mask=None):
    return {"arm": arm, "mask": MASK[arm], "affinity_p": 0.0 if arm == "C" else 1.0,
            "seed": seed, "metric": metric, "eval_mask": eval_mask or MASK[arm], "lang": lang,
            "loss": loss, "tokens": 10}


def _rows():
    """Three seeds. Korean probe in A: translation 2.0/2.2/2.1, unrelated 2.3, none 2.5 ->
    transfer 0.3/0.1/0.2; C: translation 2.25 -> transfer 0.05 each; B (document mask): all 2.4,
    transfer 0. Korean isolated: A 3.0 - 0.1 seed, B 3.0 -> A - B = -0.1/-0.2/-0.3."""
    rows = []
    for seed, a in enumerate([2.0, 2.2, 2.1], 1):
        rows += [_row("A", seed, "probe_translation", "ko", a),
                 _row("A", seed, "probe_unrelated", "ko", 2.3),
                 _row("A", seed, "probe_none", "ko", 2.5),
                 _row("A", seed, "probe_translation@native", "ko", 3.0),
                 _row("A", seed, "probe_unrelated@native", "ko", 3.0 + 0.01 * seed)]
        rows += [_row("C", seed, "probe_translation", "ko", 2.25),
                 _row("C", seed, "probe_unrelated", "ko", 2.3)]
        rows += [_row("B", seed, f"probe_{c}", "ko", 2.4) for c in
                 ("translation", "unrelated", "none")]
        rows += [_row("A", seed, "isolated", "ko", 3.0 - 0.1 * seed),
                 _row("B", seed, "isolated", "ko", 3.0), _row("C", seed, "isolated", "ko", 3.0),
                 _row("A", seed, "isolated", "en", 2.0), _row("B", seed, "isolated", "en", 2.0)]
        rows.append(_row("A", seed, "isolated", "ko", 99.0, eval_mask="causal"))  # not own mask
    return rows


def test_values_transfer_context_and_subsets_exact():
    rows = _rows()
    tr = report.values(rows, "transfer")
    assert {k: round(v, 9) for k, v in tr.items() if k[0] == "A"} == {
        ("A", 1, "ko"): 0.3, ("A", 2, "ko"): 0.1, ("A", 3, "ko"): 0.2}
    assert {k: v for k, v in tr.items() if k[0] == "B"} == {("B", s, "ko"): 0.0 for s in (1, 2, 3)}
    cx = report.values(rows, "context")
    assert round(cx[("A", 1, "ko")], 9) == 0.5 and ("C", 1, "ko") not in cx  # C has no (c)
    nat = report.values(rows, "transfer@native")
    assert {k: round(v, 9) for k, v in nat.items()} == {
        ("A", 1, "ko"): 0.01, ("A", 2, "ko"): 0.02, ("A", 3, "ko"): 0.03}
    assert report.values(rows, "isolated")[("A", 1, "ko")] == pytest.approx(2.9)  # own mask only


def test_aggregate_exact_own_mask_korean_first():
    s = report.aggregate(_rows())
    iso = [(x["arm"], x["lang"]) for x in s if x["metric"] == "isolated"]
    assert iso == [("A", "ko"), ("A", "en"), ("B", "ko"), ("B", "en"), ("C", "ko")]
    a = next(x for x in s if (x["metric"], x["arm"], x["lang"]) == ("isolated", "A", "ko"))
    assert (a["n"], a["min"], a["max"]) == (3, pytest.approx(2.7), pytest.approx(2.9))
    assert a["mean"] == pytest.approx(2.8) and a["std"] == pytest.approx(0.1)
    assert [x["metric"] for x in s][0] == "probe_translation"  # metrics as first seen


def test_endpoints_exact_t_and_p_paired_by_seed():
    rows = _rows()
    e = {r["id"]: r for r in report.endpoint_rows(rows, report.PRIMARY)}
    # E1a: transfer 0.3, 0.1, 0.2: mean 0.2, sd 0.1, t = 0.2 / (0.1 / sqrt 3) = sqrt 12, df 2:
    # p = 1 - t / sqrt(t^2 + 2) = 1 - sqrt(12 / 14)
    assert e["E1a"]["mean"] == pytest.approx(0.2) and e["E1a"]["t"] == pytest.approx(math.sqrt(12))
    assert e["E1a"]["p"] == pytest.approx(1 - math.sqrt(12 / 14), abs=1e-12)
    assert e["E1a"]["t_hi"] - e["E1a"]["mean"] == pytest.approx(4.3027 * 0.1 / math.sqrt(3))
    assert not e["E1a"]["detected"]  # p 0.074
    # E1b: A - C = 0.25, 0.05, 0.15 (the same spread, shifted): mean 0.15
    assert e["E1b"]["values"] == pytest.approx([0.25, 0.05, 0.15])
    # E2: A - B = -0.1, -0.2, -0.3
    assert e["E2"]["values"] == pytest.approx([-0.1, -0.2, -0.3])
    assert e["E2"]["p"] == pytest.approx(1 - math.sqrt(12 / 14), abs=1e-12)
    assert e["E2"]["p_holm"] == e["E2"]["p"]  # primary: uncorrected
    assert Endpoint("x", "isolated", "ko", "A", "B").sample(rows[:-10]) == pytest.approx([-0.1, -0.2])
    assert report.endpoint_rows(rows, [Endpoint("x", "isolated", "ja", "A")]) == []  # no data


def test_secondary_family_is_holm_corrected_and_its_endpoints_are_named():
    rows = _rows()
    sec = report.secondary(["en", "ko", "ja"])
    ids = [e.id for e in sec]
    assert ids[:6] == ["S-cA-ko", "S-nativeA-ko", "S-nativeAC-ko", "S-copyableA-ko",
                       "S-copyableAC-ko", "S-tA-ja"]
    assert "S-iAB-en" in ids and "S-iAB-ko" not in ids  # ko's A - B is E2
    er = {r["id"]: r for r in report.endpoint_rows(rows, sec)}
    assert set(er) == {"S-cA-ko", "S-nativeA-ko", "S-iAB-en", "S-iAC-ko"}  # the ones with data
    ps = {k: r["p"] for k, r in er.items()}
    # S-iAB-en: all 0 -> p 1; S-iAC-ko: -0.1, -0.2, -0.3 -> p 0.074; S-cA-ko: 0.5, 0.3, 0.4;
    # native: 0.01, 0.02, 0.03 (both t = sqrt 12 / ...): Holm multiplies the smallest by 4
    assert ps["S-iAB-en"] == 1.0
    order = sorted(ps, key=ps.get)
    assert er[order[0]]["p_holm"] == pytest.approx(min(1.0, 4 * ps[order[0]]))
    assert all(er[k]["p_holm"] >= ps[k] for k in ps)
    assert er["S-nativeA-ko"]["label"] == ("ko probe transfer (b)-(a) on native-script tokens "
                                           "not in the translation, in A")


def test_endpoint_table_and_verdicts_in_plain_words():
    rows = _rows()
    er = report.endpoint_rows(rows, report.PRIMARY)
    t = report.endpoint_table(er, holm_col=False).splitlines()
    assert t[0] == "| id | endpoint | mean | t 95% interval | p | per seed |"
    assert t[2].startswith("| E1a | ko probe transfer (b)-(a), in A | +0.2000 | [-0.0484, "
                           "+0.4484] | 0.074 | +0.3000, +0.1000, +0.2000 |")
    v = "\n".join(report.verdict(er))
    assert "E1a: not detected" in v and "E2: not detected" in v
    # the same numbers with a tighter spread: detected, in both directions of E2
    tight = [dict(r, loss=r["loss"] if r["arm"] != "A" or "probe_translation" not in r["metric"]
                  else 2.0 + 0.001 * r["seed"]) for r in rows]
    for r in tight:
        if r["arm"] == "A" and r["metric"] == "isolated" and r["lang"] == "ko":
            r["loss"] = 3.0 + (0.2 + 0.001 * r["seed"]) * (1 if r["eval_mask"] == "xlda" else 0)
    er = report.endpoint_rows(tight, report.PRIMARY)
    v = "\n".join(report.verdict(er))
    assert "E1a: yes, the XLDA model uses the English translation" in v
    assert "E2: XLDA hurts Korean" in v
    assert "XLDA has a price in the weights" in "\n".join(report.recipe_lines(er))
    for r in tight:
        if r["arm"] == "A" and r["metric"] == "isolated" and r["lang"] == "ko":
            r["loss"] = 2.8 + 0.001 * r["seed"]
    v = "\n".join(report.verdict(report.endpoint_rows(tight, report.PRIMARY)))
    assert "E2: XLDA helps Korean in the weights" in v


def test_csv_round_trip(tmp_path):
    er = report.endpoint_rows(_rows(), report.PRIMARY)
    p = report.write_csv(er, tmp_path / "sub" / "endpoints.csv", report.ENDPOINT_FIELDS)
    with open(p, newline="") as f:
        back = list(csv.DictReader(f))
    assert [r["id"] for r in back] == ["E1a", "E1b", "E2"]
    assert back[0]["values"] == "0.300000 0.100000 0.200000" and back[0]["mean"] == "0.200000"


def test_plot_writes_a_png_with_both_panels(tmp_path):
    rows = _rows()
    p = report.plot(report.endpoint_rows(rows, report.PRIMARY), rows, tmp_path / "a.png")
    head = p.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", head[16:24])
    assert (w, h) == (1100, 400)


def test_tables_exact():
    rows = _rows()
    md = report.markdown_table(report.aggregate(rows), "isolated").splitlines()
    assert md[0] == "| arm | ko | en |"
    assert md[2] == "| A | 2.8000 ± 0.1000 [2.7000, 2.9000] | 2.0000 ± 0.0000 [2.0000, 2.0000] |"
    assert md[4] == "| C | 3.0000 ± 0.0000 [3.0000, 3.0000] | - |"
    pt = report.probe_table(rows).splitlines()
    assert pt[2] == ("| A | ko | 10 | 2.1000 | 2.3000 | 2.5000 | +0.2000 ± 0.1000 | +0.4000 | 3/3 |")
    assert pt[3].startswith("| B | ko | 10 | 2.4000 | 2.4000 | 2.4000 | +0.0000 ± 0.0000 |")
    cm = report.cross_mask_table(rows, "ko", "isolated").splitlines()
    assert cm[0] == "| arm (trained with) \\ evaluated | xlda | document | causal |"  # as seen
    assert cm[2] == "| A (xlda) | 2.8000 ± 0.1000 | - | 99.0000 ± 0.0000 |"
    assert cm[3] == "| B (document) | - | 3.0000 ± 0.0000 | - |"
