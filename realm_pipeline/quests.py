"""Quest files: JSONL chat examples people drop into `$REALM_HOME/inbox/` (pure: files and DuckDB only).

One example a line: `{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}`, the last
message the assistant's. A file is validated whole, registered whole in one transaction, and never deleted:
it ends in `inbox/accepted/` or in `inbox/rejected/` beside a `<name>.error.json` report.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from realm_pipeline import ledger

MAX_BYTES = 10 * 1024 * 1024
MAX_EXAMPLES = 100_000
ROLES = ("system", "user", "assistant")


class QuestRejected(ValueError):
    """A quest file that cannot be registered; `line` is 1-based, None for whole-file problems."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {reason}" if line is not None else reason)
        self.reason = reason
        self.line = line


@dataclass(frozen=True)
class QuestFile:
    """A validated quest file: its content hash and its examples (each a list of messages)."""

    sha256: str
    examples: list[list[dict[str, str]]]
    n: int

    @property
    def quest_id(self) -> str:
        """The ledger id: the first 16 hex digits of the sha256."""
        return self.sha256[:16]


def inbox_dir(home: Path | str) -> Path:
    """`$REALM_HOME/inbox`."""
    return Path(home) / "inbox"


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_example(obj: object, line: int) -> list[dict[str, str]]:
    if not isinstance(obj, dict):
        raise QuestRejected(f"expected an object with 'messages', got {type(obj).__name__}", line)
    extra = sorted(set(obj) - {"messages"})
    if extra:
        raise QuestRejected(f"unknown field(s) {extra}: only 'messages' is allowed", line)
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise QuestRejected("field 'messages' must be a non-empty list", line)
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise QuestRejected(f"{where} must be an object with 'role' and 'content'", line)
        extra = sorted(set(m) - {"role", "content"})
        if extra:
            raise QuestRejected(f"{where} has unknown field(s) {extra}", line)
        if m.get("role") not in ROLES:
            raise QuestRejected(f"{where}.role must be one of {list(ROLES)}, got {m.get('role')!r}", line)
        if not isinstance(m.get("content"), str):
            raise QuestRejected(f"{where}.content must be a string", line)
    if messages[-1]["role"] != "assistant":
        raise QuestRejected(
            f"messages[{len(messages) - 1}].role must be 'assistant' (the last message)", line
        )
    return messages


def validate_quest_file(
    path: Path | str,
    *,
    registered_sha256s: Collection[str],
    max_bytes: int = MAX_BYTES,
    max_examples: int = MAX_EXAMPLES,
) -> QuestFile:
    """Validate a whole quest file; raises QuestRejected naming the line and field of the first problem."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise QuestRejected(f"oversized: {size} bytes > {max_bytes}")
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if sha in registered_sha256s:
        raise QuestRejected(f"duplicate: a quest with sha256 {sha} is already registered")
    examples = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue  # blank lines (a trailing newline) carry nothing
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise QuestRejected(f"not JSON: {exc}", number) from None
        examples.append(_check_example(obj, number))
        if len(examples) > max_examples:
            raise QuestRejected(f"oversized: more than {max_examples} examples", number)
    if not examples:
        raise QuestRejected("empty: no examples")
    return QuestFile(sha, examples, len(examples))


def _free_name(directory: Path, name: str) -> Path:
    # Never overwrite: a second file of the same name gets a numbered suffix.
    dest, n = directory / name, 1
    while dest.exists() or dest.with_name(dest.name + ".error.json").exists():
        stem, dot, ext = name.partition(".")
        dest = directory / f"{stem}.{n}{dot}{ext}"
        n += 1
    return dest


def add_to_inbox(path: Path | str, home: Path | str) -> Path:
    """Copy a file into the inbox (as `.jsonl`), atomically so the sensor never reads half a copy."""
    src = Path(path)
    inbox = inbox_dir(home)
    inbox.mkdir(parents=True, exist_ok=True)
    dest = _free_name(inbox, f"{src.stem}.jsonl")
    tmp = dest.with_name(f".{dest.name}.part")  # the sensor lists *.jsonl only
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    return dest


def reject(path: Path | str, home: Path | str, error: QuestRejected) -> Path:
    """Move a bad file to `inbox/rejected/` with `<name>.error.json` beside it; returns the report's path."""
    src = Path(path)
    rejected = inbox_dir(home) / "rejected"
    rejected.mkdir(parents=True, exist_ok=True)
    dest = _free_name(rejected, src.name)
    report = {
        "file": src.name,
        "sha256": file_sha256(src),
        "line": error.line,
        "problem": error.reason,
        "time": datetime.now(UTC).isoformat(),
    }
    report_path = dest.with_name(dest.name + ".error.json")
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(src, dest)
    return report_path


def accept(path: Path | str, home: Path | str) -> Path:
    """Move a registered file to `inbox/accepted/`."""
    accepted = inbox_dir(home) / "accepted"
    accepted.mkdir(parents=True, exist_ok=True)
    dest = _free_name(accepted, Path(path).name)
    os.replace(path, dest)
    return dest


def registered_sha256s(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every registered quest's sha256."""
    return {r[0] for r in con.execute("SELECT sha256 FROM quests").fetchall()}


def insert_examples(con: duckdb.DuckDBPyConnection, quest: QuestFile) -> None:
    """All of a quest's examples in one statement (executemany is too slow for 100k rows)."""
    texts = [json.dumps(m, ensure_ascii=False) for m in quest.examples]
    con.execute(
        "INSERT INTO quest_examples SELECT ?, generate_subscripts(?::VARCHAR[], 1) - 1, unnest(?::VARCHAR[])",
        [quest.quest_id, texts, texts],
    )


def register_quest(con: duckdb.DuckDBPyConnection, quest: QuestFile, source_path: str, now: datetime) -> bool:
    """The quests row and every example in ONE transaction; False (a no-op) when the sha is registered."""
    con.execute("BEGIN TRANSACTION")
    try:
        if con.execute("SELECT 1 FROM quests WHERE sha256 = ?", [quest.sha256]).fetchone():
            con.execute("ROLLBACK")
            return False
        ledger.upsert(
            con,
            "quests",
            [
                {
                    "quest_id": quest.quest_id,
                    "sha256": quest.sha256,
                    "n_examples": quest.n,
                    "source_path": source_path,
                    "registered_at": now,
                }
            ],
        )
        insert_examples(con, quest)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return True
