"""Verifiable rewards for RLVR (GRPO): plain functions ``f(record, completion) -> float | None``.

Torch-free on purpose: rewards score decoded text, so they are tested on any CPU, imported by
data tools without the training stack, and a user's own reward file needs nothing but Python.
``record`` is the JSONL prompt record (``{"prompt": ..., "answer": "42", ...}``), ``completion``
the decoded completion without special tokens; ``None`` means "not applicable" and is left to
the caller (``RewardSet`` turns an all-None row into NaN, TRL's mark of an unscorable completion).
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import re
import threading
from pathlib import Path
from typing import Callable, Optional

Reward = Callable[[dict, str], Optional[float]]

BOXED = "\\boxed{"
ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
# Plain words are text, not math: math-verify reads "listen" as the product l*i*s*t*e*n, which
# equals "silent", so word answers are judged by exact match only.
WORDS = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*")
MATH_VERIFY_TIMEOUT_S = 5


def _boxed(text: str) -> tuple[list[str], int]:
    """The contents of every balanced ``\\boxed{...}`` and the number of ``\\boxed{`` openings
    (more openings than contents means one is unbalanced)."""
    found, starts = [], 0
    i = text.find(BOXED)
    while i != -1:
        starts += 1
        depth, j = 1, i + len(BOXED)
        while j < len(text) and depth:
            if text[j] == "\\":  # \{ \} \\ are escaped characters, not grouping braces
                j += 2
                continue
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth == 0:
            found.append(text[i + len(BOXED):j - 1])
        i = text.find(BOXED, i + len(BOXED))
    return found, starts


def extract_answer(text: str) -> str | None:
    """The last balanced ``\\boxed{...}``'s content, else the last ``<answer>`` tag's (stripped),
    else None. The last one wins because models restate and correct themselves before ending."""
    boxes, _ = _boxed(text)
    if boxes:
        return boxes[-1]
    tags = ANSWER_TAG.findall(text)
    return tags[-1].strip() if tags else None


def normalize(s: str) -> str:
    """Undo trivial formatting so exact match compares answers, not typography: strip, collapse
    whitespace, drop surrounding ``$`` and a trailing period (outside or inside the ``$``), and
    remove thousands separators from plain numbers ("1,000" -> "1000"; "1,2" stays, it may be a
    list or a decimal comma)."""
    s = " ".join(str(s).split())
    s = s.removesuffix(".").strip().strip("$").strip().removesuffix(".").strip()
    return s.replace(",", "") if THOUSANDS.fullmatch(s) else s


def _answer(completion: str) -> str:
    # no box or tag: the whole completion is the answer (short-answer prompts)
    found = extract_answer(completion)
    return completion.strip() if found is None else found


def _math_verify():
    """The math_verify module, or None when it is not installed (tests patch this to None)."""
    try:
        import math_verify
    except ImportError:
        return None
    return math_verify


def _verify(gold: str, pred: str) -> bool | None:
    """math-verify's equivalence, or None when it cannot decide (not installed, a side unparsed,
    or a plain-word answer)."""
    mv = _math_verify()
    if mv is None or WORDS.fullmatch(gold) or WORDS.fullmatch(pred):
        return None
    # math-verify times out with signal.alarm, which raises outside the main thread: keep the
    # timeout where it works and run without one in threads (rollout workers may use them).
    in_main = threading.current_thread() is threading.main_thread()
    timeout = MATH_VERIFY_TIMEOUT_S if in_main else None
    # Wrapped in $...$ so bare LaTeX is read: parse("\\sqrt{2}") and parse("x+1") find nothing.
    g = mv.parse(f"${gold}$", parsing_timeout=timeout)
    p = mv.parse(f"${pred}$", parsing_timeout=timeout)
    if not g or not p:
        return None
    return bool(mv.verify(g, p, timeout_seconds=timeout))


def accuracy(record: dict, completion: str) -> float | None:
    """1.0 when the completion's answer equals ``record["answer"]``: normalized exact match, else
    math-verify's symbolic/numeric equivalence ("\\frac{1}{2}" == "0.5") where it is installed
    and parses both sides."""
    if "answer" not in record:
        return None
    gold, pred = normalize(str(record["answer"])), normalize(_answer(completion))
    if not gold or not pred:  # an empty box never matches
        return 0.0
    if gold == pred:
        return 1.0
    return 1.0 if _verify(gold, pred) else 0.0


def exact(record: dict, completion: str) -> float | None:
    """1.0 when the normalized answer equals the normalized ``record["answer"]``; no math."""
    if "answer" not in record:
        return None
    gold, pred = normalize(str(record["answer"])), normalize(_answer(completion))
    return 1.0 if gold and gold == pred else 0.0


def format_reward(record: dict, completion: str) -> float:
    """1.0 when the completion gives exactly one well-formed answer: one ``<answer>`` tag
    (whatever is inside it, a box included) or else one balanced ``\\boxed{}``. Two answers,
    an unbalanced box or a stray tag score 0.0: the policy must commit to one answer."""
    tags = ANSWER_TAG.findall(completion)
    if completion.count("<answer>") != len(tags) or completion.count("</answer>") != len(tags):
        return 0.0
    boxes, starts = _boxed(completion)
    if len(boxes) != starts:
        return 0.0
    outside, _ = _boxed(ANSWER_TAG.sub("", completion))
    return 1.0 if len(tags) + len(outside) == 1 else 0.0


REWARDS: dict[str, Reward] = {"accuracy": accuracy, "exact": exact, "format": format_reward}


def load_reward(name: str) -> Reward:
    """A registry name, or ``module:function`` where module is a dotted importable name or a path
    to a .py file (``my/rewards.py:score``)."""
    if name in REWARDS:
        return REWARDS[name]
    module_name, sep, func_name = name.rpartition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"unknown reward {name!r}: use one of {sorted(REWARDS)} or "
                         "'module:function' (a dotted module or a path/to/file.py)")
    try:
        if module_name.endswith(".py") or "/" in module_name:
            spec = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
            if spec is None or spec.loader is None:
                raise ImportError(f"not a loadable Python file: {module_name}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as e:  # a syntax error in the user's file is as fatal as a missing file
        raise ValueError(f"reward {name!r}: cannot import module {module_name!r}: "
                         f"{type(e).__name__}: {e}") from e
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise ValueError(f"reward {name!r}: module {module_name!r} has no callable {func_name!r}")
    return fn


class RewardSet:
    """Several rewards, weighted and summed per completion."""

    def __init__(self, names: list[str], weights: list[float] | None = None):
        if isinstance(names, str) or not names:
            raise ValueError(f"reward names must be a non-empty list, got {names!r}")
        weights = [1.0] * len(names) if weights is None else [float(w) for w in weights]
        if len(weights) != len(names):
            raise ValueError(f"{len(weights)} reward weights for {len(names)} rewards {names}")
        if not all(math.isfinite(w) for w in weights):
            raise ValueError(f"reward weights must be finite, got {weights}")
        self.names = list(names)
        self.weights = weights
        self.functions = [load_reward(n) for n in names]

    def score(self, record: dict, completion: str) -> tuple[float, list[float | None]]:
        """(weighted sum over the applicable rewards, each reward's value); the sum is NaN when
        no reward applies, so the caller can tell "unscorable" from "scored 0"."""
        values: list[float | None] = []
        for name, fn in zip(self.names, self.functions):
            try:
                r = fn(record, completion)
                r = None if r is None else float(r)
            except Exception as e:  # a bug in a user's reward must stop training, not score 0
                raise ValueError(f"reward {name!r} failed: {type(e).__name__}: {e}") from e
            if r is not None and not math.isfinite(r):
                raise ValueError(f"reward {name!r} returned {r}; return None for 'not applicable'")
            values.append(r)
        if all(r is None for r in values):
            return float("nan"), values
        return sum(w * r for w, r in zip(self.weights, values) if r is not None), values
