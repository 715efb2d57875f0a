"""One chat rendering for training labels, eval prompts and sparring probes, with one set of options.

Qwen3-style templates open every assistant answer with a think block; with `enable_thinking=False`
the generation prompt ends in the empty `<think>\\n\\n</think>\\n\\n` that training labels start after,
so a trained hero answers straight away at eval time. Templates without that variable ignore it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Messages = list[dict[str, str]]

# Passed to every apply_chat_template call (and part of every eval protocol: a change makes scores stale).
CHAT_TEMPLATE_OPTIONS: Mapping[str, Any] = {"enable_thinking": False}


def render(tokenizer: Any, messages: Messages) -> str:
    """Messages (without the answer) as prompt text ending with the assistant's generation prompt."""
    return tokenizer.apply_chat_template(
        list(messages), add_generation_prompt=True, tokenize=False, **CHAT_TEMPLATE_OPTIONS
    )


def chat_ids(tokenizer: Any, messages: Messages, *, add_generation_prompt: bool) -> list[int]:
    """Token ids of messages rendered with the same template options as `render`."""
    out = tokenizer.apply_chat_template(
        list(messages), tokenize=True, add_generation_prompt=add_generation_prompt, **CHAT_TEMPLATE_OPTIONS
    )
    if isinstance(out, dict) or hasattr(out, "keys"):  # transformers 5 returns a BatchEncoding
        out = out["input_ids"]
    return list(out)
