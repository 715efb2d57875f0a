"""Build and publish the PUBLIC MIRROR: JSON + a static page, read only from declared-public ledger columns.

Pure (no Dagster). Publication is crash-safe by construction:

* `target_dir` (e.g. `$REALM_HOME/mirror`) is a SYMLINK to a versioned sibling directory
  `mirror.v-<utc>-<id>`. A new mirror is written into `mirror.staging-<uuid>`, every file and the directory
  fsynced, checked by the caller's `check` (the leak scan), renamed to its version name, and published by
  `os.replace`-ing a fresh symlink over `target_dir`: one rename(2), so a reader (or a crash) sees the old
  mirror or the new one, never a mix and never none.
* A crash before the symlink swap leaves only unreferenced `mirror.staging-*` / `mirror.v-*` /
  `mirror.link-*` siblings; the next export (one at a time: the `mirror` pool) deletes them, and older versions.
"""

import json
import math
import os
import shutil
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import duckdb

from realm_pipeline.campaign import weakest_primitive
from realm_pipeline.disk import DiskFull, failed_write_line, require_free
from realm_pipeline.ledger import TABLES, VIEWS

SCHEMA_VERSION = 1
DATA_FILES = ("leaderboard.json", "heroes.json")
SCHEMA_FILES = ("leaderboard.schema.json", "heroes.schema.json")
_DATA_PLACEHOLDER = "/*REALM_DATA*/null"


class EmptyMirror(RuntimeError):
    """The leaderboard has no rows: publishing would wipe the public mirror."""


def _check_columns(table: str, names: Iterable[str]) -> None:
    """Raise unless every name is a declared-public column of `table` (the mirror's allowlist)."""
    table = VIEWS.get(table, table)
    if table not in TABLES:
        raise KeyError(f"unknown ledger table {table!r}")
    allowed = set(TABLES[table].public_columns)
    bad = [n for n in names if n not in allowed]
    if bad:
        raise PermissionError(f"{table}.{bad} not declared public: the mirror may not read it")


def _quoted(names: Iterable[str]) -> str:
    return ", ".join('"' + n + '"' for n in names)


def read_public(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Iterable[str] | None = None,
    order_by: Iterable[str] = (),
) -> list[dict]:
    """Rows of `table`, reading only declared-public columns (all of them, or the `columns` subset)."""
    source = VIEWS.get(table, table)
    cols = (
        tuple(columns) if columns is not None else TABLES[source].public_columns if source in TABLES else ()
    )
    order = tuple(order_by)
    _check_columns(table, cols + order)
    if not cols:
        return []
    # Names are checked against TABLES above, so quoting them is only for reserved words.
    sql = f"SELECT {_quoted(cols)} FROM {table}"
    if order:
        sql += f" ORDER BY {_quoted(order)}"
    return [dict(zip(cols, row, strict=True)) for row in con.execute(sql).fetchall()]


def _jsonable(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN/Infinity
    return value


def _clean(row: dict) -> dict:
    return {k: _jsonable(v) for k, v in row.items()}


def _dumps(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def schema(name: str) -> dict:
    """One of the packaged JSON Schemas (`leaderboard` or `heroes`)."""
    text = resources.files("realm_pipeline.mirror").joinpath("schemas", f"{name}.schema.json").read_text()
    return json.loads(text)


def _leaderboard(con: duckdb.DuckDBPyConnection, generated_at: str) -> dict:
    rows = read_public(con, "leaderboard_rows", order_by=("bench", "rank", "lane"))
    return {"schema_version": SCHEMA_VERSION, "generated_at": generated_at, "rows": [_clean(r) for r in rows]}


def _heroes(con: duckdb.DuckDBPyConnection, generated_at: str) -> dict:
    # The one current score per (checkpoint, skill, level): the same rows the curriculum and board use.
    scores = read_public(
        con, "current_scores", ("hero", "checkpoint_id", "step", "skill", "level", "n", "accuracy")
    )
    eval_sets = {
        (r["skill"], r["level"]): r
        for r in read_public(con, "eval_sets", ("skill", "level", "shared_facts_share", "chance_accuracy"))
    }
    ckpts = read_public(con, "checkpoints", ("hero", "checkpoint_id", "step"))
    events = read_public(
        con,
        "curriculum_events",
        ("hero", "skill", "level", "event", "checkpoint_id", "step", "accuracy"),
        order_by=("hero", "step", "skill", "level", "event"),
    )
    states = {r["hero"]: r for r in read_public(con, "hero_state")}
    level_losses = read_public(con, "level_losses", ("hero", "step", "skill", "level", "heldout_loss"))

    latest = {(r["hero"], r["checkpoint_id"], r["skill"], r["level"]): r for r in scores}

    steps: dict[str, set] = defaultdict(set)
    accuracy: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for c in ckpts:
        if c["step"] is not None:
            steps[c["hero"]].add(c["step"])
    for (hero, ckpt, skill, level), r in latest.items():
        if r["step"] is not None:
            steps[hero].add(r["step"])
        accuracy[hero][skill].append(
            {
                "step": r["step"],
                "level": level,
                "accuracy": _jsonable(r["accuracy"]),
                "n": r["n"],
                "checkpoint_id": ckpt,
                # share of these eval items whose facts also occur in training (small item spaces)
                "shared_facts_share": _jsonable(eval_sets.get((skill, level), {}).get("shared_facts_share")),
                # what a constant answer scores on these items: the accuracy's floor
                "chance_accuracy": _jsonable(eval_sets.get((skill, level), {}).get("chance_accuracy")),
            }
        )
    ups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    by_hero_events: dict[str, list] = defaultdict(list)
    for e in events:
        by_hero_events[e["hero"]].append(_clean({k: v for k, v in e.items() if k != "hero"}))
        if e["event"] == "level_up" and e["step"] is not None:
            ups[e["hero"]][e["skill"]].append((e["step"], e["level"]))

    heroes = []
    for hero in sorted(set(states) | set(steps) | set(by_hero_events), key=str):
        state = states.get(hero, {})
        try:
            levels = json.loads(state.get("levels_json") or "{}")
        except ValueError:
            levels = {}
        skills = sorted(set(accuracy[hero]) | set(ups[hero]) | set(levels), key=str)
        hero_steps = sorted(steps[hero])
        skill_series = []
        for skill in skills:
            # Per step: the level being learned when that checkpoint was evaluated (every skill starts at
            # level 1), and the level in force after it (raised by a level-up earned at that step).
            marks, level, i, series = sorted(ups[hero][skill]), 1, 0, []
            for s in hero_steps:
                learning = level
                while i < len(marks) and marks[i][0] <= s:
                    level = max(level, marks[i][1])
                    i += 1
                series.append({"step": s, "level": level, "learning": learning})
            points = sorted(
                accuracy[hero][skill], key=lambda p: (p["step"] is None, p["step"] or 0, p["level"])
            )
            skill_series.append(
                {
                    "skill": skill,
                    "level": levels.get(skill, level),
                    "levels": series,
                    "accuracy": points,
                    "effort": _effort_by_level(hero, skill, level_losses, ups[hero][skill]),
                }
            )
        try:
            timeline = json.loads(state.get("timeline_json") or "[]")
            primitives = json.loads(state.get("primitives_json") or "{}")
            verdicts = json.loads(state.get("verdicts_json") or "{}")
            cap_calls = json.loads(state.get("cap_calls_json") or "[]")
        except ValueError:
            timeline, primitives, verdicts, cap_calls = [], {}, {}, []
        heroes.append(
            {
                "hero": hero,
                "champion": state.get("champion"),
                "maxed_out": state.get("maxed_out"),
                "maxed_out_reason": state.get("maxed_out_reason"),
                "claim": state.get("claim"),
                "timeline": timeline,
                "primitives": primitives,
                "weakest_primitive": weakest_primitive(primitives),
                # per skill: learning | plateau | capped | complete, with its evidence
                "verdicts": verdicts.get("skills", {}),
                "regressions": verdicts.get("regressions", []),
                # per cap call: its checkpoint, the level claimed, segments since, held or refuted
                "cap_calls": cap_calls,
                "paused": state.get("paused"),
                "updated_at": _jsonable(state.get("updated_at")),
                "skills": skill_series,
                "events": by_hero_events[hero],
            }
        )
    return {"schema_version": SCHEMA_VERSION, "generated_at": generated_at, "heroes": heroes}


def _effort_by_level(hero: str, skill: str, level_losses: list[dict], ups: list[tuple]) -> list[dict]:
    """Effort, plastic gain and efficiency per level of one skill (training.strain.strain_report)."""
    from realm_pipeline.training.strain import LevelLoss, strain_report

    losses = [
        LevelLoss(int(r["step"]), skill, int(r["level"]), float(r["heldout_loss"]))
        for r in level_losses
        if r["hero"] == hero
        and r["skill"] == skill
        and r["heldout_loss"] is not None
        and r["step"] is not None
    ]
    if not losses:
        return []
    # A level_up event names the level the skill now stands at (mastered = level - 1), except the one
    # that completes the cap, which repeats the cap's level (mastered = level).
    mastered, seen = [], set()
    for step, level in sorted(ups):
        mastered.append((skill, level if level in seen else level - 1, step))
        seen.add(level)
    report = strain_report(losses, mastered, {skill: 10**6})  # the cap only bounds the level being learned
    return [
        {
            "level": e.level,
            "segments": e.segments,
            "floor": _jsonable(round(e.floor, 4)),
            "effort": _jsonable(round(e.effort, 4)),
            "plastic_gain": None if e.plastic_gain is None else _jsonable(round(e.plastic_gain, 4)),
            "efficiency": None if e.efficiency is None else _jsonable(round(e.efficiency, 4)),
        }
        for e in report.levels
    ]


def render_page(leaderboard: dict, heroes: dict) -> bytes:
    """index.html: the page template with both documents inlined, so it also works from file://."""
    template = resources.files("realm_pipeline.mirror").joinpath("page.html").read_text()
    # "<" only occurs inside JSON strings, where \u003c is the same character: nothing can close <script>.
    inline = json.dumps({"leaderboard": leaderboard, "heroes": heroes}, ensure_ascii=False, allow_nan=False)
    inline = inline.replace("<", "\\u003c")
    if _DATA_PLACEHOLDER not in template:
        raise ValueError("page.html has no data placeholder")
    return template.replace(_DATA_PLACEHOLDER, inline, 1).encode()


def build_mirror(con: duckdb.DuckDBPyConnection, *, generated_at: datetime | None = None) -> dict[str, bytes]:
    """Every file of the mirror, by name: the two JSON documents, their schemas and index.html."""
    stamp = (generated_at or datetime.now(UTC)).replace(microsecond=0).isoformat()
    leaderboard = _leaderboard(con, stamp)
    heroes = _heroes(con, stamp)
    files = {"leaderboard.json": _dumps(leaderboard), "heroes.json": _dumps(heroes)}
    for name in SCHEMA_FILES:
        files[name] = json.dumps(schema(name.removesuffix(".schema.json")), indent=2).encode()
    files["index.html"] = render_page(leaderboard, heroes)
    return files


def leaderboard_row_count(files: dict[str, bytes]) -> int:
    """Rows in the built leaderboard.json."""
    return len(json.loads(files["leaderboard.json"])["rows"])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _prune(target: Path, keep: Path | None) -> list[str]:
    """Delete stale staging dirs, temp links and every version but `keep`; caller holds the lock."""
    removed = []
    for sibling in target.parent.iterdir():
        name = sibling.name
        stale = name.startswith((f"{target.name}.staging-", f"{target.name}.link-"))
        old_version = name.startswith(f"{target.name}.v-") and (keep is None or sibling.name != keep.name)
        if stale or old_version:
            _remove(sibling)
            removed.append(name)
    return removed


MIRROR_BLOCK = 4096  # a file takes whole blocks of the file system
MIRROR_REMEDY = "the previous mirror is unchanged; free space and the next rollup publishes it"


def write_mirror(
    files: dict[str, bytes],
    target_dir: Path | str,
    *,
    allow_empty: bool = False,
    check: Callable[[Path], None] | None = None,
    _after_staging: Callable[[Path], None] | None = None,
) -> Path:
    """Publish `files` at `target_dir` (a symlink) atomically; returns the version directory now published.

    `check(staged_dir)` runs on the fsynced staged copy before anything is published; raising aborts
    (the staged copy is removed, the old mirror stays). `_after_staging` is a test hook for crash drills.
    """
    target = Path(target_dir)
    if "leaderboard.json" in files and not allow_empty and leaderboard_row_count(files) == 0:
        raise EmptyMirror("refusing to publish an empty leaderboard (pass allow_empty=True to do it anyway)")
    if target.exists() and not target.is_symlink():
        raise FileExistsError(f"{target} is a real directory; the mirror must be a symlink to a version dir")
    target.parent.mkdir(parents=True, exist_ok=True)
    # One exporter at a time is the caller's to ensure (the asset runs in Dagster's `mirror` pool, limit 1):
    # anything staged that we did not stage is then a crashed export's litter.
    current = target.resolve() if target.is_symlink() else None
    _prune(target, current)
    # the new version is written beside the current one: its files (each rounded up to a block) must fit
    needed = sum(-(-len(data) // MIRROR_BLOCK) * MIRROR_BLOCK for data in files.values()) + MIRROR_BLOCK
    require_free(target.parent, needed, f"mirror export to {target}", remedy=MIRROR_REMEDY)
    staged = target.parent / f"{target.name}.staging-{uuid.uuid4().hex}"
    staged.mkdir()
    try:
        for name, data in files.items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"bad mirror file name {name!r}")
            with open(staged / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        _fsync_dir(staged)
        if _after_staging is not None:
            _after_staging(staged)
        if check is not None:
            check(staged)
        version = (
            target.parent / f"{target.name}.v-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        )
        os.rename(staged, version)
        link = target.parent / f"{target.name}.link-{uuid.uuid4().hex}"
        os.symlink(version.name, link)  # relative: the mirror tree can be moved or served as a whole
        os.replace(link, target)  # the one atomic step that publishes
        _fsync_dir(target.parent)
    except BaseException as exc:
        line = failed_write_line(exc, staged) if not isinstance(exc, DiskFull) else None
        _remove(staged)
        if line is not None:
            raise DiskFull(f"mirror export to {target}: {line}; the previous mirror is unchanged") from exc
        raise
    _prune(target, version)
    return version
