"""Character-level tokenizer with a short chat template for tiny heroes."""

from __future__ import annotations

from typing import Any

PAD = "<pad>"
UNK = "<unk>"
SYSTEM = "<|system|>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
END = "<|end|>"
SPECIAL_TOKENS = [PAD, UNK, SYSTEM, USER, ASSISTANT, END]

# Each role is one special token and each turn ends with <|end|>: ChatML's shape at a fraction of the tokens.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def char_vocab(characters: str) -> list[str]:
    """Deterministic vocab: special tokens, then sorted unique chars (given + printable ASCII + newline)."""
    chars = set(characters) | {chr(c) for c in range(32, 127)} | {"\n"}
    return SPECIAL_TOKENS + sorted(chars)


def build_char_tokenizer(characters: str) -> Any:
    """Build a `PreTrainedTokenizerFast` with one token per character and a short chat template."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(char_vocab(characters))}
    # BPE with no merges = one token per character, and (unlike WordLevel) it needs no pre-tokenizer to split.
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, fuse_unk=False))
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=END,
        bos_token=None,
        additional_special_tokens=[SYSTEM, USER, ASSISTANT],
        clean_up_tokenization_spaces=False,
        model_max_length=1_000_000,
    )
    # Specials already sit in the vocab at fixed ids, so registering them must not move any id.
    assert tok.convert_tokens_to_ids(SPECIAL_TOKENS) == list(range(len(SPECIAL_TOKENS)))
    tok.chat_template = CHAT_TEMPLATE
    return tok


def is_char_tokenizer(tokenizer: Any) -> bool:
    """True when the tokenizer uses realm's char template (enables the fast tokenization path)."""
    return getattr(tokenizer, "chat_template", None) == CHAT_TEMPLATE
