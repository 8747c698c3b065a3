"""tools/evaluate.py end to end on the toy suite, on the Megatron checkpoint and on its HF
export: the report's numbers are recomputed here by hand from the HF model's logits (word-level
tokenizer: word wN is id N + 2)."""
import json

import pytest
import torch


def ids(text):
    return [int(w[1:]) + 2 for w in text.split()]


def _ll(model, ctx, cont):
    with torch.no_grad():
        lp = model(torch.tensor([ctx + cont[:-1]])).logits[0].double().log_softmax(-1)
    return sum(float(lp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))


def _by_hand(tiny_model, toy_tasks):
    from transformers import AutoModelForCausalLM

    from tests.evaluate.fixtures import gen_items, translate

    model = AutoModelForCausalLM.from_pretrained(tiny_model[2], dtype=torch.float32).eval()
    chosen = {}
    for lang, items in (("en", toy_tasks["items"]), ("ko", [translate(i) for i in toy_tasks["items"]])):
        chosen[lang] = [max(range(3), key=lambda c: _ll(model, ids(it["question"]), ids(it["choices"][c])))
                        for it in items]
    acc = {lang: sum(c == it["answer"] for c, it in zip(chosen[lang], toy_tasks["items"])) / 8
           for lang in chosen}
    same = sum(a == b for a, b in zip(chosen["en"], chosen["ko"])) / 8
    hits = 0
    for it in gen_items():
        out = []
        for _ in range(3):  # greedy, stop at w0 (id 2) or the EOD (id 0)
            with torch.no_grad():
                nxt = int(model(torch.tensor([ids(it["question"]) + out])).logits[0, -1].argmax())
            if nxt in (0, 2):
                break
            out.append(nxt)
        hits += " ".join(f"w{t - 2}" for t in out) == it["answer"]
    return acc, same, hits / 4


@pytest.mark.parametrize("backend", ["load", "hf"])
def test_suite_report_matches_a_hand_computation(tiny_model, toy_tasks, tmp_path, backend, capsys):
    from xlda.evaluate.cli import main

    ckpt, tok, hf = tiny_model
    src = ["--load", str(ckpt), "--tokenizer-model", str(tok)] if backend == "load" else ["--hf", str(hf)]
    out = tmp_path / "out"
    assert main([*src, "--suite", str(toy_tasks["suite"]), "--include-path", str(toy_tasks["tasks"]),
                 "--data-dir", str(toy_tasks["data"]), "--output", str(out), "--batch-size", "4"]) == 0
    rep = json.loads((out / "report.json").read_text())
    acc, same, em = _by_hand(tiny_model, toy_tasks)
    scores = {t["task"]: t["score"] for t in rep["tasks"]}
    assert scores == pytest.approx({"toy_mc_en": acc["en"], "toy_mc_ko": acc["ko"], "toy_gen": em})
    assert rep["consistency"][0]["consistency"] == pytest.approx(same)
    assert rep["languages"]["en"]["macro"] == pytest.approx((acc["en"] + em) / 2)
    assert rep["languages"]["en"]["micro"] == pytest.approx((acc["en"] * 8 + em * 4) / 12)
    assert rep["average"]["n"] == 20
    lines = capsys.readouterr().out
    assert "consistency toy_mc_en / toy_mc_ko" in lines and "[xlda] scored in" in lines
    for name in ("report.txt", "results.json", "samples/toy_mc_en.jsonl", "samples/toy_gen.jsonl"):
        assert (out / name).is_file(), name
    assert len((out / "samples" / "toy_mc_ko.jsonl").read_text().splitlines()) == 8
