"""RLVR rewards: answer extraction, the built-in rewards (with and without math-verify), loading
user rewards by name, and the weighted RewardSet with its None/NaN and error rules."""
import math
import threading

import pytest
from hypothesis import given, strategies as st

from xlda.posttrain import rlvr_rewards
from xlda.posttrain.rlvr_rewards import (REWARDS, RewardSet, extract_answer, load_reward,
                                         normalize)

R = {"answer": "42"}


@pytest.fixture
def no_math_verify(monkeypatch):
    monkeypatch.setattr(rlvr_rewards, "_math_verify", lambda: None)


def test_extract_answer():
    assert extract_answer("so \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert extract_answer("\\boxed{1} wait, \\boxed{2}") == "2"
    assert extract_answer("\\boxed{\\{1,2\\}}") == "\\{1,2\\}"  # escaped braces are not groups
    assert extract_answer("\\boxed{1} then \\boxed{2") == "1"  # an unbalanced box is no answer
    assert extract_answer("think <answer> 7 </answer>") == "7"
    assert extract_answer("<answer>1</answer> <answer>2</answer>") == "2"
    assert extract_answer("<answer>a</answer> \\boxed{b}") == "b"  # a box beats a tag
    assert extract_answer("\\boxed{}") == ""
    assert extract_answer("just 42") is None


def test_normalize():
    assert normalize("  $1,000$. ") == "1000"
    assert normalize("$x +\n 1.$") == "x + 1"
    assert normalize("-12,345.5") == "-12345.5"
    assert normalize("1,2") == "1,2"  # not a thousands-separated number


@given(st.text(alphabet=st.characters(blacklist_characters="{}\\"), max_size=30))
def test_extract_answer_of_a_box_is_its_content(s):
    assert extract_answer("reasoning \\boxed{1} then \\boxed{" + s + "} done") == s


@given(st.text(alphabet=" \t\n", max_size=5), st.text(alphabet=" \t\n", max_size=5))
def test_exact_is_invariant_to_surrounding_whitespace(left, right):
    assert REWARDS["exact"](R, left + "\\boxed{42}" + right) == 1.0
    assert REWARDS["exact"]({"answer": left + "42" + right}, "42") == 1.0


def test_accuracy_uses_math_verify_equivalence():
    pytest.importorskip("math_verify")
    acc = REWARDS["accuracy"]
    assert acc({"answer": "0.5"}, "so \\boxed{\\frac{1}{2}}") == 1.0
    assert acc({"answer": "1+x"}, "\\boxed{x+1}") == 1.0
    assert acc({"answer": "2"}, "<answer>\\sqrt{4}</answer>") == 1.0
    assert acc({"answer": "4"}, "\\boxed{3}") == 0.0
    # plain words are not products of symbols: "listen" would equal "silent" in math-verify
    assert acc({"answer": "silent"}, "\\boxed{listen}") == 0.0
    # rollout workers may score in threads, where math-verify's signal.alarm timeout raises
    out = []
    t = threading.Thread(target=lambda: out.append(acc({"answer": "0.5"}, "\\boxed{\\frac12}")))
    t.start()
    t.join()
    assert out == [1.0]


def test_accuracy_plain_answers_and_missing_gold():
    acc = REWARDS["accuracy"]
    assert acc(R, "42") == 1.0
    assert acc(R, " $42$. ") == 1.0
    assert acc({"answer": 42}, "\\boxed{42}") == 1.0  # a non-string answer is compared as str()
    assert acc({"answer": "1000"}, "\\boxed{1,000}") == 1.0
    assert acc(R, "\\boxed{}") == 0.0
    assert acc({"prompt": "p"}, "42") is None


def test_accuracy_falls_back_to_exact_match_without_math_verify(no_math_verify):
    acc = REWARDS["accuracy"]
    assert acc({"answer": "0.5"}, "\\boxed{\\frac{1}{2}}") == 0.0
    assert acc({"answer": "\\frac{1}{2}"}, "\\boxed{\\frac{1}{2}}") == 1.0
    assert acc(R, "<answer>42.</answer>") == 1.0
    assert acc(R, "\\boxed{43}") == 0.0


def test_accuracy_falls_back_when_math_verify_cannot_parse(monkeypatch):
    class Unparsing:  # a math-verify that reads nothing: exact match decides
        @staticmethod
        def parse(s, parsing_timeout=None):
            return []

    monkeypatch.setattr(rlvr_rewards, "_math_verify", lambda: Unparsing)
    assert REWARDS["accuracy"](R, "\\boxed{42}") == 1.0
    assert REWARDS["accuracy"](R, "\\boxed{41}") == 0.0


def test_exact():
    ex = REWARDS["exact"]
    assert ex(R, "the answer is \\boxed{42}") == 1.0
    assert ex(R, "  42  ") == 1.0
    assert ex({"answer": "0.5"}, "\\boxed{\\frac{1}{2}}") == 0.0
    assert ex({"answer": ""}, "\\boxed{}") == 0.0
    assert ex({}, "42") is None


def test_format():
    fmt = REWARDS["format"]
    assert fmt({}, "thinking... \\boxed{\\frac{1}{2}}") == 1.0
    assert fmt({}, "<answer>7</answer>") == 1.0
    assert fmt({}, "<answer>\\boxed{7}</answer>") == 1.0  # the tag is the one answer
    assert fmt({}, "\\boxed{1} or \\boxed{2}") == 0.0
    assert fmt({}, "\\boxed{1") == 0.0
    assert fmt({}, "\\boxed{1} \\boxed{2") == 0.0
    assert fmt({}, "<answer>7") == 0.0
    assert fmt({}, "<answer>1</answer><answer>2</answer>") == 0.0
    assert fmt({}, "\\boxed{1} <answer>1</answer>") == 0.0
    assert fmt({}, "42") == 0.0


def test_load_reward_by_name_and_module(tmp_path, monkeypatch):
    assert load_reward("accuracy") is REWARDS["accuracy"]
    (tmp_path / "my_rewards.py").write_text(
        "def length(record, completion):\n    return float(len(completion))\n")
    by_path = load_reward(f"{tmp_path / 'my_rewards.py'}:length")
    assert by_path({}, "abc") == 3.0
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_reward("my_rewards:length")({}, "ab") == 2.0
    assert load_reward("os.path:basename") is not None  # a dotted module name


def test_load_reward_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown reward 'acuracy'.*accuracy.*module:function"):
        load_reward("acuracy")
    with pytest.raises(ValueError, match="no_such_module_xyz.*ModuleNotFoundError"):
        load_reward("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="missing.py.*FileNotFoundError"):
        load_reward(f"{tmp_path / 'missing.py'}:f")
    (tmp_path / "r.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match="no callable 'score'"):
        load_reward(f"{tmp_path / 'r.py'}:score")
    with pytest.raises(ValueError, match="no callable 'x'"):
        load_reward(f"{tmp_path / 'r.py'}:x")


def test_reward_set_weights_and_none(tmp_path):
    (tmp_path / "r.py").write_text(
        "def nothing(record, completion):\n    return None\n"
        "def boom(record, completion):\n    raise KeyError('gold')\n"
        "def nan(record, completion):\n    return float('nan')\n")
    nothing = f"{tmp_path / 'r.py'}:nothing"
    rs = RewardSet(["accuracy", "format", nothing], [2.0, 0.5, 1.0])
    assert rs.names == ["accuracy", "format", nothing]
    assert rs.score(R, "\\boxed{42}") == (2.5, [1.0, 1.0, None])
    assert rs.score(R, "42") == (2.0, [1.0, 0.0, None])
    assert RewardSet(["exact", "format"]).score(R, "\\boxed{42}") == (2.0, [1.0, 1.0])

    total, values = RewardSet(["accuracy", nothing]).score({"prompt": "p"}, "42")
    assert math.isnan(total) and values == [None, None]

    with pytest.raises(ValueError, match=r"reward '.*:boom' failed: KeyError: 'gold'"):
        RewardSet(["format", f"{tmp_path / 'r.py'}:boom"]).score(R, "42")
    with pytest.raises(ValueError, match="returned nan; return None"):
        RewardSet([f"{tmp_path / 'r.py'}:nan"]).score(R, "42")


def test_reward_set_validation():
    with pytest.raises(ValueError, match="non-empty list"):
        RewardSet([])
    with pytest.raises(ValueError, match="non-empty list"):
        RewardSet("accuracy")
    with pytest.raises(ValueError, match="1 reward weights for 2 rewards"):
        RewardSet(["accuracy", "format"], [1.0])
    with pytest.raises(ValueError, match="finite"):
        RewardSet(["accuracy"], [float("inf")])
    with pytest.raises(ValueError, match="unknown reward"):
        RewardSet(["nope"])
