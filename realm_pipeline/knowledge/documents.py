"""Short markdown reports built from the ledger, the skill docs and `$REALM_HOME/knowledge/`.

Every report also carries `facts`: (question, answer) pairs whose answer string appears verbatim in the
report, so the retrieval eval knows which chunk answers which question without a human labeller.
Only public ledger columns are rendered, plus the training mix (skill, level, weight) out of `spec_json`:
paths, hosts and prompts never enter the index.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

KNOWLEDGE_DIR = "knowledge"
FILE_SUFFIXES = (".md", ".txt")


@dataclass(frozen=True)
class Fact:
    """A question whose answer string appears verbatim in the document that states it."""

    question: str
    answer: str


@dataclass(frozen=True)
class Document:
    """One markdown report with where it came from; `facts` feed the retrieval eval."""

    doc_id: str
    source: str  # checkpoint | eval | skill | file
    text: str
    hero: str | None = None
    checkpoint_id: str | None = None
    created_at: datetime | None = None
    facts: tuple[Fact, ...] = field(default=(), compare=False)


def score_line(checkpoint_id: str, skill: str, level: int, accuracy: float, correct: int, n: int) -> str:
    """The one sentence stating a score; checkpoint reports and eval reports share it word for word."""
    return f"{checkpoint_id} scored accuracy {accuracy:.1%} ({correct}/{n}) on {skill} level {level}."


def event_line(
    event: str, hero: str, skill: str, level: int, step: int, checkpoint_id: str, acc: float
) -> str:
    """The one sentence stating a curriculum event."""
    what = {
        "level_up": "levelled up on",
        "regression": "regressed on",
        "confirmed_regression": "confirmed a regression on",
    }
    verb = what.get(event, f"had event {event} on")
    return (
        f"Hero {hero} {verb} {skill.upper()} L{level} ({skill} level {level}) at step {step}, "
        f"checkpoint {checkpoint_id}, accuracy {acc:.1%}."
    )


def _fmt(value: Any, spec: str = "") -> str:
    return "n/a" if value is None else format(value, spec)


def _rows(con: Any, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _mix(spec_json: str | None) -> list[tuple[str, int, float]]:
    """Only the training mix out of the private spec: the rest of it (paths, hosts) stays out."""
    try:
        raw = json.loads(spec_json or "{}").get("mix") or []
        return [(str(s), int(lv), float(w)) for s, lv, w in raw]
    except (ValueError, TypeError, AttributeError):
        return []


def _latest_scores(con: Any) -> list[dict[str, Any]]:
    # The one current score per (checkpoint, skill, level), as the curriculum and the leaderboard read it.
    return _rows(
        con,
        """
        SELECT checkpoint_id, hero, step, skill, level, n, correct, accuracy, partial, backend, created_at
        FROM current_scores
        ORDER BY checkpoint_id, skill, level
        """,
    )


def checkpoint_documents(con: Any) -> list[Document]:
    """One report per checkpoint (config, data mix, scores, level-ups, regressions) and one per eval."""
    ckpts = _rows(
        con,
        "SELECT checkpoint_id, hero, step, segment, parent_id, tokens, train_loss, heldout_loss, strain, "
        "zone, effort, tokens_per_s, gpu_seconds, spec_json, created_at FROM checkpoints "
        "ORDER BY hero, step, checkpoint_id",
    )
    scores: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _latest_scores(con):
        scores[row["checkpoint_id"]].append(row)
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _rows(
        con,
        "SELECT hero, skill, level, event, checkpoint_id, step, accuracy FROM curriculum_events "
        "ORDER BY step, skill, level, event",
    ):
        events[row["checkpoint_id"]].append(row)

    docs: list[Document] = []
    for c in ckpts:
        cid, hero = c["checkpoint_id"], c["hero"]
        facts: list[Fact] = []
        lines = [
            f"# Checkpoint {cid}",
            "",
            f"Hero {hero}, step {c['step']}, segment {c['segment']}, parent {c['parent_id'] or 'base'}.",
            "",
            "## Config",
            "",
            f"Tokens {_fmt(c['tokens'], ',')}; train loss {_fmt(c['train_loss'], '.4f')}; "
            f"heldout loss {_fmt(c['heldout_loss'], '.4f')}; strain {_fmt(c['strain'], '.3f')} "
            f"(zone {c['zone'] or 'n/a'}); effort {_fmt(c['effort'], '.3f')}; "
            f"{_fmt(c['tokens_per_s'], ',.0f')} tokens/s; {_fmt(c['gpu_seconds'], ',.0f')} GPU seconds.",
        ]
        mix = _mix(c["spec_json"])
        if mix:
            lines += ["", "## Data mix", ""]
            lines += [f"- {s} level {lv}: weight {w:.3f}" for s, lv, w in mix]
        by_skill: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for s in scores.get(cid, []):
            by_skill[s["skill"]].append(s)
        if by_skill:
            lines += ["", "## Scores"]
            for skill, rows in sorted(by_skill.items()):
                lines += ["", f"### {skill}", ""]
                for s in rows:
                    line = score_line(cid, skill, s["level"], s["accuracy"], s["correct"], s["n"])
                    lines.append(f"- {line}")
                    facts.append(Fact(f"What was the accuracy of {cid} on {skill} level {s['level']}?", line))
        for kind, title in (("level_up", "Level-ups"), ("regression", "Regressions")):
            rows = [e for e in events.get(cid, []) if e["event"].endswith(kind)]
            if rows:
                lines += ["", f"## {title}", ""]
                for e in rows:
                    line = event_line(e["event"], hero, e["skill"], e["level"], e["step"], cid, e["accuracy"])
                    lines.append(f"- {line}")
                    verb = "level up" if kind == "level_up" else "regress"
                    q = f"When did {e['skill'].upper()} L{e['level']} {verb} for hero {hero}?"
                    facts.append(Fact(q, line))
        docs.append(
            Document(
                f"checkpoint:{cid}",
                "checkpoint",
                "\n".join(lines) + "\n",
                hero,
                cid,
                c["created_at"],
                tuple(facts),
            )
        )
        for skill, rows in sorted(by_skill.items()):
            lines = [f"# Eval of {cid} on {skill}", "", f"Hero {hero}, step {c['step']}.", ""]
            lines += [
                f"- {score_line(cid, skill, s['level'], s['accuracy'], s['correct'], s['n'])} "
                f"Partial credit {_fmt(s['partial'], '.3f')}; backend {s['backend'] or 'n/a'}."
                for s in rows
            ]
            created = max((s["created_at"] for s in rows if s["created_at"] is not None), default=None)
            docs.append(Document(f"eval:{cid}:{skill}", "eval", "\n".join(lines) + "\n", hero, cid, created))
    return docs


def skill_documents() -> list[Document]:
    """One document per registered skill: its module docstring."""
    from realm_pipeline.skills import SKILLS  # the registry pulls in the skill modules; only needed here

    docs = []
    for name, skill in sorted(SKILLS.items()):
        text = inspect.getdoc(inspect.getmodule(type(skill))) or ""
        cls_doc = inspect.getdoc(type(skill)) or ""
        body = f"# Skill {name.upper()} ({name}), {skill.max_level} levels\n\n{cls_doc}\n\n{text}\n"
        first = (cls_doc or text).splitlines()[0] if (cls_doc or text) else ""
        facts = (Fact(f"What is the {name.upper()} skill about?", first),) if first else ()
        docs.append(Document(f"skill:{name}", "skill", body, facts=facts))
    return docs


def knowledge_files(home: Path | str) -> list[Path]:
    """The `*.md` / `*.txt` files under `$REALM_HOME/knowledge/`, sorted."""
    root = Path(home) / KNOWLEDGE_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in FILE_SUFFIXES)


def knowledge_files_fingerprint(home: Path | str) -> str:
    """sha256 over every knowledge file's relative path and bytes: changes exactly when a document does."""
    root = Path(home) / KNOWLEDGE_DIR
    digest = hashlib.sha256()
    for path in knowledge_files(home):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def file_documents(home: Path | str) -> list[Document]:
    """Every `*.md` / `*.txt` under `$REALM_HOME/knowledge/`, as written."""
    root = Path(home) / KNOWLEDGE_DIR
    docs = []
    for path in knowledge_files(home):
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = path.relative_to(root).as_posix()
        docs.append(
            Document(f"file:{rel}", "file", text, created_at=datetime.fromtimestamp(path.stat().st_mtime))
        )
    return docs


def build_documents(con: Any, home: Path | str | None = None) -> list[Document]:
    """All documents: ledger reports (from a DuckDB connection), skill docs, and knowledge files."""
    docs = checkpoint_documents(con) + skill_documents()
    if home is not None:
        docs += file_documents(home)
    return docs
