"""Split documents into chunks along markdown headings and paragraphs, with a little overlap.

Each chunk starts with its heading path ("# Checkpoint x > ## Scores > ### bin") so that a chunk cut
from the middle of a report still names the checkpoint and section it belongs to: the embedding of a
bare score line would not know which checkpoint it is about.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from realm_pipeline.knowledge.documents import Document

MAX_CHARS = 800
OVERLAP = 120
_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")


@dataclass(frozen=True)
class Chunk:
    """A piece of one document plus its provenance; `chunk_id` is a hash of doc id, position and text."""

    chunk_id: str
    doc_id: str
    text: str
    source: str
    checkpoint_id: str | None = None
    hero: str | None = None
    created_at: datetime | None = None

    @property
    def provenance(self) -> dict[str, Any]:
        """Where the chunk came from: source, document, checkpoint, hero, time."""
        return {
            "source": self.source,
            "doc_id": self.doc_id,
            "checkpoint_id": self.checkpoint_id,
            "hero": self.hero,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


def chunk_id(doc_id: str, ordinal: int, text: str) -> str:
    """Stable id: the same text at the same place of the same document always gets the same id."""
    return hashlib.sha256(f"{doc_id}\x00{ordinal}\x00{text}".encode()).hexdigest()[:32]


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """(heading path, paragraphs) per markdown section, in order."""
    out: list[tuple[str, list[str]]] = []
    stack: list[tuple[int, str]] = []
    paras: list[str] = []
    buf: list[str] = []

    def flush_para() -> None:
        if buf:
            paras.append("\n".join(buf).strip())
            buf.clear()

    def flush_section() -> None:
        flush_para()
        if paras:
            out.append((" > ".join(h for _, h in stack), list(paras)))
            paras.clear()

    for line in text.splitlines():
        m = _HEADING.match(line)
        if m:
            flush_section()
            depth = len(m.group(1))
            stack[:] = [(d, h) for d, h in stack if d < depth] + [(depth, line.strip())]
        elif not line.strip():
            flush_para()
        elif line.lstrip().startswith(("- ", "* ")) and buf and not buf[-1].lstrip().startswith(("- ", "* ")):
            flush_para()  # a list after prose starts its own paragraph
            buf.append(line.rstrip())
        else:
            buf.append(line.rstrip())
    flush_section()
    return out


def _pieces(para: str, budget: int) -> list[str]:
    """A paragraph cut to fit `budget`: at line breaks first, then at spaces, then hard."""
    if len(para) <= budget:
        return [para]
    out: list[str] = []
    cur = ""
    for unit in re.split(r"(?<=\n)|(?<= )", para):
        while len(unit) > budget:  # one word longer than the budget: cut it hard
            if cur:
                out.append(cur.strip())
                cur = ""
            out.append(unit[:budget])
            unit = unit[budget:]
        if len(cur) + len(unit) > budget and cur:
            out.append(cur.strip())
            cur = ""
        cur += unit
    if cur.strip():
        out.append(cur.strip())
    return [p for p in out if p]


def _tail(text: str, overlap: int) -> str:
    """The last `overlap` characters of a chunk body, widened back to a line or word start."""
    if overlap <= 0 or len(text) <= overlap:
        return text if overlap > 0 else ""
    tail = text[-overlap:]
    for sep in ("\n", " "):
        i = tail.find(sep)
        if i != -1:
            return tail[i + 1 :]
    return tail


def chunk_document(doc: Document, max_chars: int = MAX_CHARS, overlap: int = OVERLAP) -> list[Chunk]:
    """Chunks of at most `max_chars` characters (heading path included), overlapping by about `overlap`."""
    if max_chars < 100 or not 0 <= overlap < max_chars // 2:
        raise ValueError(f"need max_chars >= 100 and 0 <= overlap < max_chars/2, got {max_chars}, {overlap}")
    texts: list[str] = []
    for path, paras in _sections(doc.text):
        # Long heading paths are cut so the body always has at least half the budget.
        header = (path[: max_chars // 2] + "\n\n") if path else ""
        budget = max_chars - len(header)
        body = ""
        for para in paras:
            for piece in _pieces(para, budget):
                if body and len(body) + 2 + len(piece) > budget:
                    texts.append(header + body)
                    carry = _tail(body, overlap)
                    # Overlap only when it still leaves room for the next piece.
                    body = carry + "\n" + piece if carry and len(carry) + 1 + len(piece) <= budget else piece
                else:
                    body = body + "\n\n" + piece if body else piece
        if body:
            texts.append(header + body)
    return [
        Chunk(
            chunk_id(doc.doc_id, i, t), doc.doc_id, t, doc.source, doc.checkpoint_id, doc.hero, doc.created_at
        )
        for i, t in enumerate(texts)
    ]


Chunker = Callable[[Document], list[Chunk]]


def chunk_documents(docs: Iterable[Document], chunker: Chunker = chunk_document) -> list[Chunk]:
    """Chunks of every document, duplicates (same chunk id) dropped."""
    seen: dict[str, Chunk] = {}
    for doc in docs:
        for ch in chunker(doc):
            seen.setdefault(ch.chunk_id, ch)
    return list(seen.values())
