"""The assistant-only loss mask on hand-built conversations (exact token positions)."""
import json

import pytest

from tests.posttrain.fixtures import chat_tokenizer, vocab_id
from xlda.posttrain.chat import ChatRenderer, RecordError, check_messages

S, E = "<|im_start|>", "<|im_end|>"


def ids(*words):
    return [vocab_id(w) for w in words]


def test_default_template_two_turns_exact_mask(tmp_path):
    r = ChatRenderer(str(chat_tokenizer(tmp_path)))
    msgs = [{"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi there"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "how are you"},
            {"role": "assistant", "content": "fine thanks"}]
    out = r.render(check_messages(msgs))
    assert out.ids == ids(S, "system", "be", "brief", E, S, "user", "hi", "there", E,
                          S, "assistant", "hello", E, S, "user", "how", "are", "you", E,
                          S, "assistant", "fine", "thanks", E)
    # assistant content + its <|im_end|> (the trailing newline has no token here); headers not
    assert [i for i, m in enumerate(out.assistant) if m] == [12, 13, 22, 23, 24]


def test_template_from_tokenizer_config(tmp_path):
    chat_tokenizer(tmp_path)  # writes tokenizer.json beside the tokenizer_config.json below
    tmpl = ("{% for m in messages %}{{ m['role'] + ' ' + m['content'] + ' ' }}"
            "{% if m['role'] == 'assistant' %}{{ eos_token + ' ' }}{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}{{ 'assistant ' }}{% endif %}")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": tmpl, "eos_token": "<|endoftext|>"}))
    r = ChatRenderer(str(tmp_path))
    assert r.source.endswith("tokenizer_config.json")
    out = r.render([{"role": "user", "content": "what is two plus two"},
                    {"role": "assistant", "content": "four"}])
    assert out.ids == ids("user", "what", "is", "two", "plus", "two", "assistant", "four",
                          "<|endoftext|>")
    assert out.assistant == [0, 0, 0, 0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize("msgs,reason", [
    ([{"role": "assistant", "content": "hi"}], "wrong_roles"),
    ([{"role": "user", "content": "hi"}], "wrong_roles"),
    ([{"role": "user", "content": "hi"}, {"role": "user", "content": "hi"}], "wrong_roles"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}], "empty_assistant"),
    ([{"role": "user", "content": 3}], "bad_message"),
    ([], "no_messages"),
])
def test_bad_conversations_have_reasons(msgs, reason):
    with pytest.raises(RecordError) as e:
        check_messages(msgs)
    assert e.value.reason == reason
