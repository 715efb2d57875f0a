"""Quest files: JSONL chat examples people drop into `$REALM_HOME/inbox/` (pure: files and DuckDB only).

One example a line: `{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}`, the last
message the assistant's. A line is refused (each with its rule in the report) when it is no such example (a
key given twice in one object included), or when it has no user turn, two turns of one role in a row, a
system message that is not first, a control character such as NUL, an assistant turn with nothing visible
in it (empty, blank, or only zero-width characters), an answer that repeats its prompt, a user prompt that
is a held-out eval prompt of any level of any skill (quests must not leak the eval), or when it repeats an
earlier example of the file (one example given many times would outweigh the rest). A file is validated
whole, registered whole in one transaction, and never deleted: it ends in `inbox/accepted/` or in
`inbox/rejected/` beside a `<name>.error.json` report.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from realm_pipeline import ledger

if TYPE_CHECKING:
    from realm_pipeline.settings import Settings

MAX_BYTES = 10 * 1024 * 1024
MAX_EXAMPLES = 100_000
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class LineProblem:
    """One refused line (None: the whole file) and the rule it breaks."""

    line: int | None
    rule: str
    detail: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.rule}: {self.detail}"


# Shown in an exception's message; the report beside a rejected file lists every problem.
MAX_PROBLEMS_SHOWN = 5
MAX_PROBLEMS_KEPT = 1000
# Line breaks and tabs are text; every other control character (NUL first) is not what a chat carries.
ALLOWED_CONTROLS = frozenset("\t\n\r")


class QuestRejected(ValueError):
    """A quest file that cannot be registered: every refused line with its rule (`problems`).

    `reason`, `line` and `rule` are those of the first problem; `line` is 1-based, None for the whole file.
    """

    def __init__(
        self,
        reason: str,
        line: int | None = None,
        rule: str = "file",
        problems: list[LineProblem] | None = None,
    ) -> None:
        self.problems = problems or [LineProblem(line, rule, reason)]
        first = self.problems[0]
        self.reason, self.line, self.rule = first.detail, first.line, first.rule
        shown = "; ".join(map(str, self.problems[:MAX_PROBLEMS_SHOWN]))
        more = len(self.problems) - MAX_PROBLEMS_SHOWN
        super().__init__(shown + (f"; and {more} more (see the report)" if more > 0 else ""))


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


def inbox_entries(home: Path | str) -> list[Path]:
    """Everything named `*.jsonl` in the inbox, files or not: each gets a run, and a report if refused."""
    inbox = inbox_dir(home)
    return sorted(inbox.glob("*.jsonl")) if inbox.is_dir() else []


def entry_kind(path: Path) -> str:
    """'file' for a regular file; else what it is instead (a quest must be a plain file in the inbox)."""
    if path.is_symlink():
        return "symlink"
    if path.is_dir():
        return "directory"
    return "file" if path.is_file() else "special file"


def entry_run_key(path: Path) -> str:
    """A run key naming this entry's content and arrival: the same bytes dropped again get a new run."""
    stat = path.lstat()
    content = file_sha256(path) if entry_kind(path) == "file" else entry_kind(path)
    return f"{content}:{path.name}:{stat.st_mtime_ns}"


def eval_prompt_index(settings: Settings) -> dict[str, str]:
    """{held-out prompt: "eval|reserve prompt of skill Ln"} of every configured skill: skills.heldout's
    one index (eval sets and reserve samples), at each skill's eval_items_per_level."""
    from realm_pipeline.skills import get_skill
    from realm_pipeline.skills.heldout import heldout_index

    index: dict[str, str] = {}
    for name, cfg in sorted(settings.skills.items()):
        for prompt, where in heldout_index(get_skill(name), cfg.eval_items_per_level).items():
            index.setdefault(prompt.strip(), where)
    return index


class _DuplicateKey(ValueError):
    """A key given twice in one JSON object (json.loads would keep the last without a word)."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen.add(key)
    return dict(pairs)


def _invisible(text: str) -> bool:
    """True when no character of `text` shows: whitespace and format characters (U+200B, U+FEFF) only."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


def _example_problems(obj: object, line: int, eval_prompts: Mapping[str, str]) -> list[LineProblem]:
    """Every rule one JSONL line breaks (empty: the line is a good example)."""

    def bad(rule: str, detail: str) -> list[LineProblem]:
        return [LineProblem(line, rule, detail)]

    if not isinstance(obj, dict):
        return bad("not_object", f"expected an object with 'messages', got {type(obj).__name__}")
    extra = sorted(set(obj) - {"messages"})
    if extra:
        return bad("unknown_field", f"unknown field(s) {extra}: only 'messages' is allowed")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return bad("messages_shape", "field 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            return bad("message_shape", f"{where} must be an object with 'role' and 'content'")
        extra = sorted(set(m) - {"role", "content"})
        if extra:
            return bad("message_shape", f"{where} has unknown field(s) {extra}")
        if m.get("role") not in ROLES:
            return bad("role", f"{where}.role must be one of {list(ROLES)}, got {m.get('role')!r}")
        if not isinstance(m.get("content"), str):
            return bad("content_type", f"{where}.content must be a string")
        try:
            m["content"].encode("utf-8")
        except (
            UnicodeEncodeError
        ) as exc:  # a lone surrogate such as "\ud800": no text, and no ledger, holds it
            return bad("invalid_unicode", f"{where}.content holds {exc.object[exc.start]!r}, not a character")
        control = next(
            (
                i
                for i, c in enumerate(m["content"])
                if unicodedata.category(c) == "Cc" and c not in ALLOWED_CONTROLS
            ),
            None,
        )
        if control is not None:
            return bad(
                "control_character",
                f"{where}.content holds U+{ord(m['content'][control]):04X} (a control character) at "
                f"character {control}: not text",
            )
    problems: list[LineProblem] = []
    roles = [m["role"] for m in messages]
    if roles[-1] != "assistant":
        problems += bad(
            "last_not_assistant", f"messages[{len(roles) - 1}].role must be 'assistant' (the last)"
        )
    if "user" not in roles:
        problems += bad("assistant_only", "no user turn: an answer needs a prompt")
    for i in range(1, len(roles)):
        if roles[i] == roles[i - 1]:
            problems += bad("same_role_twice", f"messages[{i - 1}] and messages[{i}] are both {roles[i]!r}")
            break
    late_system = [i for i, r in enumerate(roles) if r == "system" and i > 0]
    if late_system:
        problems += bad(
            "system_not_first", f"messages[{late_system[0]}] is a system message; only the first may be"
        )
    for i, m in enumerate(messages):
        if m["role"] == "assistant" and _invisible(m["content"]):
            unseen = sorted({f"U+{ord(c):04X}" for c in m["content"] if not c.isspace()})
            only = f" (only invisible {', '.join(unseen)})" if unseen else ""
            problems += bad("empty_assistant", f"messages[{i}].content is empty{only}")
            break
    for i in range(1, len(messages)):
        prompt, answer = messages[i - 1], messages[i]
        if (
            answer["role"] == "assistant"
            and prompt["role"] == "user"
            and answer["content"].strip()
            and answer["content"].strip() == prompt["content"].strip()
        ):
            problems += bad("answer_copies_prompt", f"messages[{i}] repeats the prompt messages[{i - 1}]")
            break
    for i, m in enumerate(messages):
        where = eval_prompts.get(m["content"].strip()) if m["role"] == "user" else None
        if where is not None:
            problems += bad("eval_prompt", f"messages[{i}] is a held-out {where}")
            break
    return problems


def validate_quest_file(
    path: Path | str,
    *,
    registered_sha256s: Collection[str],
    eval_prompts: Mapping[str, str] | None = None,
    max_bytes: int = MAX_BYTES,
    max_examples: int = MAX_EXAMPLES,
) -> QuestFile:
    """Validate a whole quest file; raises QuestRejected listing every refused line with its rule.

    `eval_prompts` ({prompt: "skill Ln"}, see eval_prompt_index) are refused as user prompts: training on
    them would leak the held-out eval.
    """
    path = Path(path)
    eval_prompts = eval_prompts or {}
    kind = entry_kind(path)
    if kind != "file":
        raise QuestRejected(f"not a quest file: {path.name} is a {kind}; drop a plain JSONL file", rule=kind)
    size = path.stat().st_size
    if size > max_bytes:
        raise QuestRejected(f"oversized: {size} bytes > {max_bytes}", rule="oversized")
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if sha in registered_sha256s:
        raise QuestRejected(f"duplicate: a quest with sha256 {sha} is already registered", rule="duplicate")
    examples = []
    first_line: dict[str, int] = {}  # each example's canonical JSON -> the line that first gave it
    repeats: dict[str, list[int]] = {}  # ... -> the lines that give it again
    problems: list[LineProblem] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue  # blank lines (a trailing newline) carry nothing
        try:
            obj = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            problems.append(
                LineProblem(
                    number, "duplicate_key", f"key {exc.args[0]!r} given twice in one object: give it once"
                )
            )
            continue
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(LineProblem(number, "not_json", f"not JSON: {exc}"))
            continue
        except RecursionError:
            problems.append(LineProblem(number, "too_deep", "nested too deeply to be a chat example"))
            continue
        found = _example_problems(obj, number, eval_prompts)
        if found:
            problems += found
        else:
            examples.append(obj["messages"])
            canonical = json.dumps(obj["messages"], sort_keys=True, ensure_ascii=False)
            if canonical in first_line:
                repeats.setdefault(canonical, []).append(number)
            else:
                first_line[canonical] = number
        if len(examples) + len(problems) > max_examples:
            problems.append(LineProblem(number, "oversized", f"oversized: more than {max_examples} examples"))
            break
        if len(problems) >= MAX_PROBLEMS_KEPT:
            problems.append(LineProblem(number, "too_many_problems", "stopped reading here"))
            break
    for canonical, lines in list(repeats.items())[:MAX_PROBLEMS_KEPT]:
        problems.append(
            LineProblem(
                lines[0],
                "repeated_example",
                f"the example of line {first_line[canonical]} again ({len(lines) + 1} copies in all, the "
                f"last on line {lines[-1]}): give each example once",
            )
        )
    problems.sort(key=lambda p: p.line or 0)
    if problems:
        raise QuestRejected("", problems=problems)
    if not examples:
        raise QuestRejected("empty: no examples", rule="empty")
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
        "sha256": file_sha256(src) if entry_kind(src) == "file" else None,
        "line": error.line,
        "rule": error.rule,
        "problem": error.reason,
        "problems": [
            {"file": src.name, "line": p.line, "rule": p.rule, "problem": p.detail} for p in error.problems
        ],
        "time": datetime.now(UTC).isoformat(),
    }
    report_path = dest.with_name(dest.name + ".error.json")
    staged = report_path.with_name(f".{report_path.name}.part")
    staged.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(staged, report_path)  # the report appears whole, then the file moves beside it
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
