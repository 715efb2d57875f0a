"""Tokenize chat examples with answer-only labels and pack them into fixed-length rows (resumable stream).

torch is imported where rows become tensors: the stream alone (Source, MixStream) needs none."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from realm_pipeline.lm.chat import chat_ids

from .tokenizer import END, SPECIAL_TOKENS, is_char_tokenizer

if TYPE_CHECKING:
    import torch

IGNORE = -100
Messages = list[dict[str, str]]


def _chat_ids(tokenizer: Any, messages: Messages, add_generation_prompt: bool) -> list[int]:
    # The one rendering eval prompts use too (same template options): labels start where eval prompts end.
    return chat_ids(tokenizer, messages, add_generation_prompt=add_generation_prompt)


class ExampleEncoder:
    """Chat `messages` -> (input_ids, labels); labels are -100 except assistant content and its end marker."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.fast = is_char_tokenizer(tokenizer)
        if self.fast:
            # The char template is one role token + one token per char + <|end|>: build ids without Jinja.
            self.vocab = tokenizer.get_vocab()
            self.unk = self.vocab["<unk>"]
            self.end = self.vocab[END]
            self.roles = {r: self.vocab[f"<|{r}|>"] for r in ("system", "user", "assistant")}
            assert all(s in self.vocab for s in SPECIAL_TOKENS)

    def encode(self, messages: Messages) -> tuple[list[int], list[int]]:
        """Return (input_ids, labels), labels aligned with input_ids (the model shifts them)."""
        if self.fast:
            ids: list[int] = []
            labels: list[int] = []
            for m in messages:
                body = [self.vocab.get(c, self.unk) for c in m["content"]]
                turn = [self.roles[m["role"]], *body, self.end]
                ids += turn
                labels += [IGNORE, *body, self.end] if m["role"] == "assistant" else [IGNORE] * len(turn)
            return ids, labels
        return self._encode_generic(messages)

    def _encode_generic(self, messages: Messages) -> tuple[list[int], list[int]]:
        # Any chat template: an assistant turn is what rendering it adds after the generation prompt.
        full = _chat_ids(self.tokenizer, messages, add_generation_prompt=False)
        labels = [IGNORE] * len(full)
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        for i in turns:
            prefix = _chat_ids(self.tokenizer, messages[:i], add_generation_prompt=True)
            upto = _chat_ids(self.tokenizer, messages[: i + 1], add_generation_prompt=False)
            consistent = full[: len(upto)] == upto and upto[: len(prefix)] == prefix
            if not consistent and i != turns[-1]:
                continue  # template rewrites earlier turns (e.g. strips <think>): label only the last
            if not consistent:
                start = len(prefix) if full[: len(prefix)] == prefix else len(full)
                end = len(full)
            else:
                start, end = len(prefix), len(upto)
            labels[start:end] = full[start:end]
        # Trailing template newlines after the end marker are not part of the answer.
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if eos is not None and eos in labels:
            last = max(i for i, t in enumerate(labels) if t == eos)
            labels[last + 1 :] = [IGNORE] * (len(labels) - last - 1)
        if labels:
            labels[0] = IGNORE  # never supervise a first token: in a packed row it follows another example
        return full, labels


@dataclass
class Source:
    """One weighted part of the training mix: a (skill, level) stream or a fixed list of chat examples."""

    weight: float
    skill: str | None = None
    level: int | None = None
    examples: list[Messages] | None = None
    name: str = ""
    eval_count: int = 100  # the skill's eval_items_per_level: its held-out prompts are never yielded


@dataclass
class StreamState:
    """How far the mix has been consumed: global example count, per-source counts and tokens (JSON-able)."""

    position: int = 0
    counts: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # per source: the tokens of its consumed examples


class MixStream:
    """Deterministic weighted mix of sources; only consumed examples advance `state` (exact resume)."""

    def __init__(
        self, sources: Sequence[Source], seed: int, encoder: ExampleEncoder, state: StreamState | None = None
    ):
        self.sources = [s for s in sources if s.weight > 0 and (s.examples is None or len(s.examples) > 0)]
        if not self.sources:
            raise ValueError("training mix is empty")
        self.seed = seed
        self.encoder = encoder
        self.state = state or StreamState(0, [0] * len(self.sources))
        if len(self.state.counts) != len(self.sources):
            raise ValueError("stream state does not match the mix")
        if not self.state.tokens:  # a resume state saved before tokens were counted
            self.state.tokens = [0] * len(self.sources)
        total = sum(s.weight for s in self.sources)
        self.cum: list[float] = []
        acc = 0.0
        for s in self.sources:
            acc += s.weight / total
            self.cum.append(acc)
        self._iters: list[Iterator[Any] | None] = [None] * len(self.sources)
        self._iter_pos = list(self.state.counts)
        self._peeked: tuple[int, list[int], list[int]] | None = None

    def _pick(self, position: int) -> int:
        # One RNG per position: the source of example i depends only on (seed, i), never on history.
        r = random.Random(self.seed * 1_000_003 + position).random()
        for k, c in enumerate(self.cum):
            if r < c:
                return k
        return len(self.cum) - 1

    def _messages(self, k: int, count: int) -> Messages:
        src = self.sources[k]
        if src.examples is not None:
            n = len(src.examples)
            epoch, j = divmod(count, n)
            order = list(range(n))
            random.Random(f"{self.seed}:{k}:{epoch}").shuffle(order)
            return src.examples[order[j]]
        it = self._iters[k]
        if it is None or self._iter_pos[k] != count:
            from realm_pipeline.skills import get_skill
            from realm_pipeline.skills.heldout import training_items

            it = self._iters[k] = training_items(
                get_skill(src.skill), src.level, self.seed, start=count, eval_count=src.eval_count
            )
        item = next(it)
        self._iter_pos[k] = count + 1
        return item.messages

    def peek(self) -> tuple[list[int], list[int]]:
        """The next example's (ids, labels), without consuming it."""
        if self._peeked is None:
            k = self._pick(self.state.position)
            ids, labels = self.encoder.encode(self._messages(k, self.state.counts[k]))
            self._peeked = (k, ids, labels)
        return self._peeked[1], self._peeked[2]

    def next_source(self) -> str:
        """Name of the source the next example comes from (for error messages)."""
        src = self.sources[self._pick(self.state.position)]
        return src.name or (f"{src.skill}@{src.level}" if src.skill else "examples")

    def consume(self) -> tuple[list[int], list[int]]:
        """Return the next example and advance the stream state."""
        ids, labels = self.peek()
        k = self._peeked[0]  # type: ignore[index]
        self._peeked = None
        self.state.position += 1
        self.state.counts[k] += 1
        self.state.tokens[k] += len(ids)
        return ids, labels

    def trained_tokens(self) -> dict[str, int]:
        """Tokens consumed so far per source name (`skill@level`, quests, reflections)."""
        out: dict[str, int] = {}
        for src, n in zip(self.sources, self.state.tokens, strict=True):
            name = src.name or (f"{src.skill}@{src.level}" if src.skill else "examples")
            out[name] = out.get(name, 0) + n
        return out


@dataclass
class PackedBatch:
    """Fixed-shape rows of packed examples; position_ids restart at 0 for every example and the padding."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    n_tokens: int  # non-padding tokens
    n_examples: int

    def to(self, device: Any) -> PackedBatch:
        """Move tensors to `device`."""
        return PackedBatch(
            self.input_ids.to(device),
            self.labels.to(device),
            self.position_ids.to(device),
            self.n_tokens,
            self.n_examples,
        )


def _rows_to_batch(
    rows: list[list[tuple[list[int], list[int]]]], max_length: int, pad_id: int
) -> PackedBatch:
    # torch only here and below: the mix stream itself (MixStream) serves torch-free callers too
    import torch

    ids = torch.full((len(rows), max_length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), max_length), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(rows), max_length), dtype=torch.long)
    n_tokens = n_examples = 0
    for r, row in enumerate(rows):
        at = 0
        for ex_ids, ex_labels in row:
            n = len(ex_ids)
            ids[r, at : at + n] = torch.tensor(ex_ids)
            labels[r, at : at + n] = torch.tensor(ex_labels)
            pos[r, at : at + n] = torch.arange(n)
            at += n
            n_tokens += n
            n_examples += 1
        # Padding forms its own pseudo-sequence (positions restart), so the packed mask keeps it isolated.
        pos[r, at:] = torch.arange(max_length - at)
    return PackedBatch(ids, labels, pos, n_tokens, n_examples)


class ExampleTooLong(ValueError):
    """A training example longer than the row length: raised, never truncated (a cut label teaches wrong)."""


def _too_long(n_tokens: int, max_length: int, what: str) -> ExampleTooLong:
    return ExampleTooLong(
        f"{what} has {n_tokens} tokens, more than the row length max_length={max_length}; "
        "the segment's max_length must fit its longest example (lm/budgets.py)"
    )


def pack_from_stream(stream: MixStream, batch_size: int, max_length: int, pad_id: int) -> PackedBatch:
    """Greedily fill `batch_size` rows of `max_length` tokens; an example that does not fit starts a row.

    An example longer than `max_length` raises ExampleTooLong (with its source and length)."""
    rows: list[list[tuple[list[int], list[int]]]] = []
    for _ in range(batch_size):
        row: list[tuple[list[int], list[int]]] = []
        used = 0
        while True:
            ids, _ = stream.peek()
            n = len(ids)
            if n > max_length:
                what = f"training example #{stream.state.position} ({stream.next_source()})"
                raise _too_long(n, max_length, what)
            if row and used + n > max_length:
                break
            ids, labels = stream.consume()
            row.append((ids, labels))
            used += n
            if used >= max_length:
                break
        rows.append(row)
    return _rows_to_batch(rows, max_length, pad_id)


def pack_examples(
    examples: Sequence[tuple[list[int], list[int]]], batch_size: int, max_length: int, pad_id: int
) -> list[PackedBatch]:
    """Pack a fixed list of encoded examples (in order) into batches, e.g. for held-out loss.

    An example longer than `max_length` raises ExampleTooLong."""
    rows: list[list[tuple[list[int], list[int]]]] = []
    row: list[tuple[list[int], list[int]]] = []
    used = 0
    for i, (ids, labels) in enumerate(examples):
        if len(ids) > max_length:
            raise _too_long(len(ids), max_length, f"example #{i} of {len(examples)}")
        if row and used + len(ids) > max_length:
            rows.append(row)
            row, used = [], 0
        row.append((ids, labels))
        used += len(ids)
    if row:
        rows.append(row)
    return [
        _rows_to_batch(rows[i : i + batch_size], max_length, pad_id) for i in range(0, len(rows), batch_size)
    ]


def token_nll(model: Any, batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL of the shifted labels and the supervised-position mask (attention stays per example)."""
    import torch

    # attention_mask=None + restarting position_ids makes transformers build a block-diagonal causal mask.
    logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
    targets = batch.labels[:, 1:]
    mask = targets != IGNORE
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        targets.reshape(-1).clamp_min(0),
        reduction="none",
    ).view_as(targets)
    return nll * mask, mask


def loss_sum(model: Any, batches: Sequence[PackedBatch], device: Any = "cpu") -> tuple[float, int]:
    """(summed answer-token NLL, supervised-token count) over packed batches (eval mode, no grad)."""
    import torch

    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    count = 0
    with torch.no_grad():
        for b in batches:
            nll, mask = token_nll(model, b.to(device))
            total += nll.sum().double().cpu()
            count += int(mask.sum())
    model.train(was_training)
    return float(total), count


def mean_loss(model: Any, batches: Sequence[PackedBatch], device: Any = "cpu") -> float:
    """Mean answer-token NLL over packed batches (eval mode, no grad)."""
    total, count = loss_sum(model, batches, device)
    return total / max(count, 1)
