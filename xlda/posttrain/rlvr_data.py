"""RLVR prompts: JSONL records ``{"prompt": str | [messages], "answer": ..., ...}`` or
``{"messages": [...], "answer": ...}`` (TRL's standard and conversational prompt forms). The
messages end with a user turn; the chat template's generation prompt (the assistant header) is
appended. The whole record is kept: reward functions read ``answer`` or any other field.

Bad records are counted per reason with file:line (``records.BadRecords``): ``no_prompt``,
``bad_message``, ``wrong_roles``, ``too_long`` (the prompt leaves fewer than
``--max-completion-length`` tokens of ``--seq-length`` + 1), ``bad_json``.
"""
from __future__ import annotations

from dataclasses import dataclass

from xlda.posttrain.chat import RecordError, check_turns, message_list


@dataclass
class Prompt:
    ids: list  # the rendered prompt, generation header included
    record: dict  # the JSONL record, as read


def prompt_messages(rec: dict) -> list[dict]:
    """The record's prompt as chat messages: optional system, then user/assistant turns
    alternating from user, ending with user."""
    raw = rec.get("prompt", rec.get("messages"))
    if isinstance(raw, str):
        if not raw.strip():
            raise RecordError("no_prompt", "'prompt' is empty")
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise RecordError("no_prompt", "no 'prompt' (a string or a list of messages) or "
                          "'messages'")
    out = message_list(raw)
    check_turns(out, "user", "the prompt must end with a user turn (the model writes the "
                "assistant turn)")
    return out


def read_prompts(paths, renderer, max_prompt_tokens: int, bad) -> list[Prompt]:
    """Every usable prompt of ``paths`` (JSONL(.gz)), in file order."""
    from xlda.posttrain.records import read_records

    def convert(rec: dict) -> Prompt:
        ids = renderer.render_prompt(prompt_messages(rec))
        if len(ids) > max_prompt_tokens:
            raise RecordError("too_long", f"the prompt has {len(ids)} tokens, more than "
                              f"{max_prompt_tokens} (--seq-length + 1 - --max-completion-length)")
        return Prompt(ids, rec)

    return list(read_records(paths, convert, bad))
