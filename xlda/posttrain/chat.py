"""Conversations -> token ids + the assistant-only loss mask.

Rendering is transformers' ``apply_chat_template`` (a sandboxed Jinja environment: no code runs
from a data or tokenizer file) with the tokenizer's own ``chat_template`` from the
``tokenizer_config.json`` next to its ``tokenizer.json`` when there is one, else DEFAULT_TEMPLATE
(ChatML)::

    <|im_start|>system\\n{content}<|im_end|>\\n        (optional, first message only)
    <|im_start|>user\\n{content}<|im_end|>\\n
    <|im_start|>assistant\\n{content}<|im_end|>\\n

Which tokens carry loss (the rule for any template): for assistant turn i, the characters from
the end of ``render(messages[:i], add_generation_prompt=True)`` (the prompt, including the
``<|im_start|>assistant\\n`` header) to the end of ``render(messages[:i+1])``: the content, the
end-of-turn marker and the template's text after it (ChatML: ``{content}<|im_end|>\\n``), so the
model learns to close its turn. A token counts when its first character lies in such a span. The
system/user turns and every assistant header carry no loss. A template for which the rendered
prefix is not a prefix of the whole conversation cannot be split this way and is refused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

DEFAULT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
ROLES = ("system", "user", "assistant")


class RecordError(ValueError):
    """A conversation that cannot be trained on; ``reason`` is the counter it goes to."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def message_list(messages: list) -> list[dict]:
    """``[{role, content}]`` of a non-empty list whose items are ``{'role': str, 'content': str}``
    (other keys dropped); a malformed item is a ``bad_message``."""
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) \
                or not isinstance(m.get("role"), str):
            raise RecordError("bad_message", f"message {i} is not {{'role': str, 'content': str}}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def check_messages(messages) -> list[dict]:
    """The messages format: a list of {role, content}; an optional system message first, then
    user/assistant turns alternating from user, ending with assistant, no empty assistant turn."""
    if not isinstance(messages, list) or not messages:
        raise RecordError("no_messages", "'messages' must be a non-empty list")
    out = message_list(messages)
    check_turns(out, "assistant", "the conversation must end with an assistant turn",
                no_empty_assistant=True)
    return out


def check_turns(messages: list, last: str, why_last: str,
                no_empty_assistant: bool = False) -> list:
    """The turns after an optional system message, checked to alternate user/assistant from
    user (and, with ``no_empty_assistant``, to hold no empty assistant turn) and to end with
    ``last`` (``why_last``: the message when they do not)."""
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    want = ("user", "assistant")
    for i, m in enumerate(turns):
        if m["role"] != want[i % 2]:
            raise RecordError("wrong_roles", f"turn {i} has role {m['role']!r}, expected "
                              f"{want[i % 2]!r} (optional system first, then user/assistant "
                              "alternating)")
        if no_empty_assistant and m["role"] == "assistant" and not m["content"].strip():
            raise RecordError("empty_assistant", f"assistant turn {i} is empty")
    if not turns or turns[-1]["role"] != last:
        raise RecordError("wrong_roles", why_last)
    return turns


@dataclass
class Rendered:
    ids: list
    assistant: list  # 1 where the token is an assistant token (carries loss), else 0


class ChatRenderer:
    """A HF fast tokenizer (tokenizer.json [+ tokenizer_config.json]) and its chat template."""

    def __init__(self, tokenizer_model: str, chat_template: Optional[str] = None):
        from transformers import PreTrainedTokenizerFast

        path = Path(tokenizer_model)
        tok_file = path / "tokenizer.json" if path.is_dir() else path
        cfg_file = tok_file.parent / "tokenizer_config.json"
        config = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
        specials = {k: config[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token")
                    if isinstance(config.get(k), str)}
        self.tok = PreTrainedTokenizerFast(tokenizer_file=str(tok_file), **specials)
        if chat_template is not None:
            self.template = Path(chat_template).read_text()
            self.source = str(chat_template)
        elif isinstance(config.get("chat_template"), str):
            self.template = config["chat_template"]
            self.source = str(cfg_file)
        else:
            self.template = DEFAULT_TEMPLATE
            self.source = "default (ChatML, xlda.posttrain.chat.DEFAULT_TEMPLATE)"
        self.tok.chat_template = self.template
        self._check_end_of_turn(tok_file)

    def _check_end_of_turn(self, tok_file: Path) -> None:
        """A template that ends turns with a marker the tokenizer cannot hold as one token
        trains a model that never stops: generation has no single token to stop at."""
        from xlda.data.tokenizer import END_OF_TURN_TOKENS

        vocab = self.tok.get_vocab()
        for marker in END_OF_TURN_TOKENS:
            if marker in self.template and marker not in vocab:
                raise ValueError(
                    f"the chat template ({self.source}) ends turns with {marker!r}, which "
                    f"{tok_file} has no token for: a model trained so never stops generating. "
                    f"Use a tokenizer that reserves it (tools/build_tokenizer.py does: "
                    f"<|im_start|> 3, <|im_end|> 4) or a --chat-template whose end of turn is "
                    f"one of its tokens (e.g. its eos_token)")

    def text(self, messages: list, add_generation_prompt: bool = False) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False,
                                            add_generation_prompt=add_generation_prompt)

    def spans(self, messages: list, first: int = 0) -> tuple[str, list]:
        """The rendered conversation and the character spans of its assistant turns (those at
        message index >= ``first``: DPO scores the response, not assistant turns in the prompt)."""
        full = self.text(messages)
        spans = []
        for i, m in enumerate(messages):
            if m["role"] != "assistant" or i < first:
                continue
            start = len(self.text(messages[:i], add_generation_prompt=True))
            end_text = self.text(messages[:i + 1])
            if not full.startswith(end_text) or not end_text.startswith(
                    self.text(messages[:i], add_generation_prompt=True)):
                raise RecordError("template_not_prefix",
                                  f"the chat template ({self.source}) does not render turn {i} "
                                  "as a prefix of the whole conversation")
            spans.append((start, len(end_text)))
        return full, spans

    def encode(self, text: str) -> tuple[list, list]:
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], enc["offset_mapping"]

    def render(self, messages: list, first: int = 0) -> Rendered:
        text, spans = self.spans(messages, first)
        ids, offsets = self.encode(text)
        mask = [int(any(a <= s < b for a, b in spans)) for s, _ in offsets]
        return Rendered(ids, mask)

    def render_prompt(self, messages: list) -> list:
        """Token ids of a prompt with the assistant header (DPO prompts, generation)."""
        return self.encode(self.text(messages, add_generation_prompt=True))[0]
