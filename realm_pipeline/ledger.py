"""The ledger's schema: every table and column, declared public or private in this one place.

The DDL, the forward migrations and the mirror's allowlist are all derived from `TABLES`, so a
column cannot exist without a visibility: adding one here without `public=` is a TypeError.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

SCHEMA_VERSION = 4


@dataclass(frozen=True)
class Column:
    """One column: its DuckDB type and whether the public mirror may ever read it."""

    name: str
    type: str
    public: bool


@dataclass(frozen=True)
class Table:
    """One table; `primary_key` makes re-writes replace rather than duplicate."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    since: int = 1  # the schema version that introduced it

    @property
    def public_columns(self) -> tuple[str, ...]:
        """Names of the columns the mirror may read."""
        return tuple(c.name for c in self.columns if c.public)

    @property
    def private_columns(self) -> tuple[str, ...]:
        """Names of the columns that must never leave the ledger."""
        return tuple(c.name for c in self.columns if not c.public)

    def ddl(self) -> str:
        """CREATE TABLE statement for this declaration."""
        cols = ",\n  ".join(f"{c.name} {c.type}" for c in self.columns)
        key = ", ".join(self.primary_key)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {cols},\n  PRIMARY KEY ({key})\n)"


def _c(name: str, type_: str, *, public: bool) -> Column:
    return Column(name, type_, public)


PUB, PRIV = True, False

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "eval_sets",
            (
                _c("skill", "VARCHAR", public=PUB),
                _c("level", "INTEGER", public=PUB),
                _c("n_items", "INTEGER", public=PUB),
                _c("eval_set_hash", "VARCHAR", public=PUB),
                _c("skill_version", "VARCHAR", public=PUB),
                # share of eval items whose facts (operands, operation) also occur in training
                _c("shared_facts_share", "DOUBLE", public=PUB),
                _c("reserve_hash", "VARCHAR", public=PUB),  # the reserve sample confirming re-runs score
                # accuracy of always giving the set's most frequent answer (uniform rate for multi-choice)
                _c("chance_accuracy", "DOUBLE", public=PUB),
            ),
            ("skill", "level"),
        ),
        Table(
            "eval_items",
            (
                _c("skill", "VARCHAR", public=PUB),
                _c("level", "INTEGER", public=PUB),
                _c("item_index", "INTEGER", public=PUB),
                _c("seed", "BIGINT", public=PRIV),
                _c("prompt", "VARCHAR", public=PRIV),
                _c("answer", "VARCHAR", public=PRIV),
                _c("system_prompt", "VARCHAR", public=PRIV),
            ),
            ("skill", "level", "item_index"),
        ),
        Table(
            "checkpoints",
            (
                _c("checkpoint_id", "VARCHAR", public=PUB),
                _c("hero", "VARCHAR", public=PUB),
                _c("step", "BIGINT", public=PUB),
                _c("segment", "INTEGER", public=PUB),
                _c("parent_id", "VARCHAR", public=PUB),
                _c("sha256", "VARCHAR", public=PUB),
                _c("tokens", "BIGINT", public=PUB),
                _c("train_loss", "DOUBLE", public=PUB),
                _c("heldout_loss", "DOUBLE", public=PUB),
                _c("strain", "DOUBLE", public=PUB),
                _c("zone", "VARCHAR", public=PUB),
                _c("effort", "DOUBLE", public=PUB),
                _c("tokens_per_s", "DOUBLE", public=PUB),
                _c("wall_s", "DOUBLE", public=PUB),
                _c("gpu_seconds", "DOUBLE", public=PUB),
                _c("peak_memory_bytes", "BIGINT", public=PUB),
                # relative to REALM_HOME (v4; absolute before); NULL once retention deleted the files
                _c("path", "VARCHAR", public=PRIV),
                _c("host", "VARCHAR", public=PRIV),
                _c("spec_json", "VARCHAR", public=PRIV),
                _c("created_at", "TIMESTAMP", public=PUB),
                _c("deleted_at", "TIMESTAMP", public=PUB),  # set by retention: the files are gone
            ),
            ("checkpoint_id",),
        ),
        Table(
            "eval_scores",
            (
                _c("checkpoint_id", "VARCHAR", public=PUB),
                _c("hero", "VARCHAR", public=PUB),
                _c("step", "BIGINT", public=PUB),
                _c("skill", "VARCHAR", public=PUB),
                _c("level", "INTEGER", public=PUB),
                _c("fingerprint", "VARCHAR", public=PUB),
                _c("n", "INTEGER", public=PUB),
                _c("correct", "INTEGER", public=PUB),
                _c("accuracy", "DOUBLE", public=PUB),
                _c("partial", "DOUBLE", public=PUB),
                _c("eval_set_hash", "VARCHAR", public=PUB),
                _c("skill_version", "VARCHAR", public=PUB),
                _c("backend", "VARCHAR", public=PUB),
                _c("gpu_seconds", "DOUBLE", public=PUB),
                _c("fingerprint_json", "VARCHAR", public=PRIV),
                _c("created_at", "TIMESTAMP", public=PUB),
                # the fingerprint without the checkpoint's own hash: only equal protocols are compared
                _c("protocol", "VARCHAR", public=PUB),
                _c(
                    "sample", "VARCHAR", public=PUB
                ),  # 'eval' (the stored set) | 'reserve' (confirming re-runs)
            ),
            ("checkpoint_id", "skill", "level", "fingerprint"),
        ),
        Table(
            "eval_generations",
            (
                _c("checkpoint_id", "VARCHAR", public=PRIV),
                _c("skill", "VARCHAR", public=PRIV),
                _c("level", "INTEGER", public=PRIV),
                _c("item_index", "INTEGER", public=PRIV),
                _c("fingerprint", "VARCHAR", public=PRIV),
                _c("output", "VARCHAR", public=PRIV),
                _c("correct", "BOOLEAN", public=PRIV),
                _c("partial", "DOUBLE", public=PRIV),
            ),
            ("checkpoint_id", "skill", "level", "item_index", "fingerprint"),
        ),
        Table(
            "curriculum_events",
            (
                _c("hero", "VARCHAR", public=PUB),
                _c("skill", "VARCHAR", public=PUB),
                _c("level", "INTEGER", public=PUB),
                _c("event", "VARCHAR", public=PUB),  # level_up | regression | confirmed_regression
                _c("checkpoint_id", "VARCHAR", public=PUB),
                _c("step", "BIGINT", public=PUB),
                _c("accuracy", "DOUBLE", public=PUB),
                _c("created_at", "TIMESTAMP", public=PUB),
            ),
            ("hero", "skill", "level", "event", "checkpoint_id"),
        ),
        Table(
            "hero_state",
            (
                _c("hero", "VARCHAR", public=PUB),
                _c("paused", "BOOLEAN", public=PUB),
                _c("maxed_out", "BOOLEAN", public=PUB),
                _c("champion", "VARCHAR", public=PUB),
                _c("levels_json", "VARCHAR", public=PUB),
                _c("updated_at", "TIMESTAMP", public=PUB),
                # the campaign's claim: levels reached and whether (and why) that is the level cap
                _c("maxed_out_reason", "VARCHAR", public=PUB),
                _c("claim", "VARCHAR", public=PUB),
                # per evaluated checkpoint: levels, accuracy and trend, maintenance multiplier, zone
                _c("timeline_json", "VARCHAR", public=PUB),
                # accuracy per primitive of the newest checkpoint (aggregates only) and the weakest one
                _c("primitives_json", "VARCHAR", public=PUB),
                # what it does next or why it stopped; private: a failure's message may name paths (v2)
                _c("status", "VARCHAR", public=PRIV),
                # per skill: learning | plateau | capped | complete and its evidence (evaluation/verdicts.py)
                _c("verdicts_json", "VARCHAR", public=PUB),
                # per cap call (`cap_calls`): its checkpoint, claimed level, segments since, held or refuted
                _c("cap_calls_json", "VARCHAR", public=PUB),
            ),
            ("hero",),
        ),
        Table(
            "leaderboard_rows",
            (
                _c("bench", "VARCHAR", public=PUB),
                _c("lane", "VARCHAR", public=PUB),
                _c("hero", "VARCHAR", public=PUB),
                _c("step", "BIGINT", public=PUB),
                _c("rank", "INTEGER", public=PUB),
                _c("accuracy", "DOUBLE", public=PUB),
                _c("n", "INTEGER", public=PUB),
                _c("ci_low", "DOUBLE", public=PUB),
                _c("ci_high", "DOUBLE", public=PUB),
                _c("gpu_seconds", "DOUBLE", public=PUB),
                _c("cost_per_point", "DOUBLE", public=PUB),
                _c("votes", "INTEGER", public=PUB),
                _c("win_rate", "DOUBLE", public=PUB),
                _c("champion", "BOOLEAN", public=PUB),
                _c("confirmed_regression", "BOOLEAN", public=PUB),
                _c("built_at", "TIMESTAMP", public=PUB),
                _c("chance_accuracy", "DOUBLE", public=PUB),  # the bench's eval set's (eval_sets)
            ),
            ("bench", "lane"),
        ),
        Table(
            # Each hero's standing per bench at every leaderboard build (version): the baseline a
            # later build is compared with. Written by the `leaderboard` asset only.
            "hero_standings",
            (
                _c("hero", "VARCHAR", public=PUB),
                _c("bench", "VARCHAR", public=PUB),
                _c("version", "BIGINT", public=PUB),
                _c("checkpoint_id", "VARCHAR", public=PUB),
                _c("step", "BIGINT", public=PUB),
                _c("accuracy", "DOUBLE", public=PUB),
                _c("n", "INTEGER", public=PUB),
                _c("mastered", "BOOLEAN", public=PUB),
                _c("protocol", "VARCHAR", public=PUB),
                _c("built_at", "TIMESTAMP", public=PUB),
            ),
            ("hero", "bench", "version"),
        ),
        Table(
            # Verdicts of confirming re-runs: a drop re-scored on the level's reserve sample.
            "regression_checks",
            (
                _c("hero", "VARCHAR", public=PUB),
                _c("bench", "VARCHAR", public=PUB),
                _c("baseline_version", "BIGINT", public=PUB),
                _c("checkpoint_id", "VARCHAR", public=PUB),
                _c("baseline", "DOUBLE", public=PUB),
                _c("eval_accuracy", "DOUBLE", public=PUB),
                _c("reserve_accuracy", "DOUBLE", public=PUB),
                _c("confirmed", "BOOLEAN", public=PUB),
                _c("created_at", "TIMESTAMP", public=PUB),
            ),
            ("hero", "bench", "baseline_version"),
        ),
        Table(
            "compare_runs",
            (
                _c("compare_id", "VARCHAR", public=PUB),
                _c("lane_a", "VARCHAR", public=PUB),
                _c("lane_b", "VARCHAR", public=PUB),
                _c("prompt_set", "VARCHAR", public=PUB),
                _c("rubric_a", "DOUBLE", public=PUB),
                _c("rubric_b", "DOUBLE", public=PUB),
                _c("results_json", "VARCHAR", public=PRIV),
                _c("created_at", "TIMESTAMP", public=PUB),
            ),
            ("compare_id",),
        ),
        Table(
            "human_prefs",
            (
                _c("compare_id", "VARCHAR", public=PUB),
                _c("vote_id", "VARCHAR", public=PUB),
                _c("choice", "VARCHAR", public=PUB),
                _c("note", "VARCHAR", public=PRIV),
                _c("voter", "VARCHAR", public=PRIV),
                _c("created_at", "TIMESTAMP", public=PUB),
            ),
            ("vote_id",),
        ),
        Table(
            "quests",
            (
                _c("quest_id", "VARCHAR", public=PUB),
                _c("sha256", "VARCHAR", public=PUB),
                _c("n_examples", "INTEGER", public=PUB),
                _c("source_path", "VARCHAR", public=PRIV),
                _c("registered_at", "TIMESTAMP", public=PUB),
            ),
            ("quest_id",),
        ),
        Table(
            "quest_examples",
            (
                _c("quest_id", "VARCHAR", public=PRIV),
                _c("example_index", "INTEGER", public=PRIV),
                _c("messages_json", "VARCHAR", public=PRIV),
            ),
            ("quest_id", "example_index"),
        ),
        Table(
            # Held-out loss of each skill level measured after a segment (the trainer's level_losses):
            # strain against each level's floor, effort, plastic gain and efficiency derive from it.
            "level_losses",
            (
                _c("checkpoint_id", "VARCHAR", public=PUB),
                _c("hero", "VARCHAR", public=PUB),
                _c("step", "BIGINT", public=PUB),
                _c("skill", "VARCHAR", public=PUB),
                _c("level", "INTEGER", public=PUB),
                _c("heldout_loss", "DOUBLE", public=PUB),
            ),
            ("checkpoint_id", "skill", "level"),
            since=3,
        ),
        Table(
            # Tokens each segment really trained per skill level (the trainer's count of the examples it
            # drew from each mix source): "maintenance tried" and the per-skill verdicts count these.
            "segment_tokens",
            (
                _c("checkpoint_id", "VARCHAR", public=PUB),
                _c("hero", "VARCHAR", public=PUB),
                _c("step", "BIGINT", public=PUB),
                _c("skill", "VARCHAR", public=PUB),
                _c("level", "INTEGER", public=PUB),
                _c("tokens", "BIGINT", public=PUB),
            ),
            ("checkpoint_id", "skill", "level"),
            since=3,
        ),
        Table(
            # The protocol each configured hero is scored under now, per stored eval-set level: computed
            # from the running configuration (evaluation/scores.declare_protocols), never from the newest
            # score. `current_scores` keeps only scores under it.
            "protocols_in_force",
            (
                _c("hero", "VARCHAR", public=PUB),
                _c("skill", "VARCHAR", public=PUB),
                _c("level", "INTEGER", public=PUB),
                _c("protocol", "VARCHAR", public=PUB),
                _c("spec_json", "VARCHAR", public=PRIV),  # what the protocol hashes (device, backend, ...)
                _c("declared_at", "TIMESTAMP", public=PUB),
            ),
            ("hero", "skill", "level"),
        ),
        Table(
            # Level-ups as facts, recorded once when first earned with the protocol they were earned under:
            # a later protocol change or retention deleting the checkpoint never takes the level away.
            "level_ups",
            (
                _c("hero", "VARCHAR", public=PUB),
                _c("skill", "VARCHAR", public=PUB),
                _c("level", "INTEGER", public=PUB),  # the level mastered
                _c("checkpoint_id", "VARCHAR", public=PUB),
                _c("step", "BIGINT", public=PUB),
                _c("accuracy", "DOUBLE", public=PUB),
                _c("protocol", "VARCHAR", public=PUB),
                _c("earned_at", "TIMESTAMP", public=PUB),
            ),
            ("hero", "skill", "level"),
        ),
        Table(
            # a skill's cap call as the curriculum first saw it (facts: the first write stands), so the
            # call can be revisited: it held while no level of the skill is earned after its step
            "cap_calls",
            (
                _c("hero", "VARCHAR", public=PUB),
                _c("skill", "VARCHAR", public=PUB),
                _c("checkpoint_id", "VARCHAR", public=PUB),  # the newest checkpoint when it was called
                _c("step", "BIGINT", public=PUB),
                _c("segment", "INTEGER", public=PUB),  # that checkpoint's segment number
                _c("cap_level", "INTEGER", public=PUB),  # the level the call says the hero holds at most
                _c("reason", "VARCHAR", public=PUB),
                _c("forgotten_json", "VARCHAR", public=PUB),  # the lost levels it cited (cap_rule.Forgetting)
                _c("called_at", "TIMESTAMP", public=PUB),
            ),
            ("hero", "skill", "checkpoint_id"),
            since=4,
        ),
        Table(
            "schema_version",
            (
                _c("version", "INTEGER", public=PRIV),
                _c("applied_at", "TIMESTAMP", public=PRIV),
            ),
            ("version",),
        ),
    )
}

# Views over declared tables: a view's columns carry its source table's visibility.
VIEWS: dict[str, str] = {"current_scores": "eval_scores"}

PUBLIC_TABLES = tuple(name for name, t in TABLES.items() if t.public_columns)
PRIVATE_TABLES = tuple(name for name, t in TABLES.items() if not t.public_columns)


def _migration_v1(con: duckdb.DuckDBPyConnection) -> None:
    for table in TABLES.values():
        if table.since <= 1:
            con.execute(table.ddl())


def add_declared(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing declared tables and add missing declared columns (additive, idempotent)."""
    for table in TABLES.values():
        con.execute(table.ddl())
        have = {r[0] for r in con.execute(f"SELECT name FROM pragma_table_info('{table.name}')").fetchall()}
        for col in table.columns:
            if col.name not in have:
                con.execute(f"ALTER TABLE {table.name} ADD COLUMN {col.name} {col.type}")


def _migration_v2(con: duckdb.DuckDBPyConnection) -> None:
    # v2: score protocols and samples, shared-facts shares, hero standings replace the lane baseline.
    add_declared(con)
    con.execute("DROP TABLE IF EXISTS leaderboard_baseline")
    con.execute("UPDATE eval_scores SET sample = 'eval' WHERE sample IS NULL")
    from realm_pipeline.evaluation.fingerprint import protocol_of  # the one definition of a protocol

    rows = con.execute(
        "SELECT fingerprint, fingerprint_json FROM eval_scores WHERE protocol IS NULL"
    ).fetchall()
    if rows:
        con.executemany(
            "UPDATE eval_scores SET protocol = ? WHERE fingerprint = ?",
            [[protocol_of(json.loads(fp_json or "{}")), fp] for fp, fp_json in rows],
        )
    create_views(con)


def home_relative(path: Path | str, home: Path | str) -> str:
    """How the ledger stores a path: relative to REALM_HOME when inside it (a copied or moved home stays
    self-contained), else as given."""
    p, root = Path(path), Path(home)
    try:
        return p.absolute().relative_to(root.absolute()).as_posix()
    except ValueError:
        return str(p)


def resolve_home_path(stored: str, home: Path | str) -> Path:
    """The file a stored path names under this REALM_HOME (an absolute one, from before v4, as it is)."""
    p = Path(stored)
    return p if p.is_absolute() else Path(home) / p


def _migration_v4(con: duckdb.DuckDBPyConnection) -> None:
    # v4: checkpoint paths relative to REALM_HOME. realm wrote <home>/checkpoints/<hero>/<id>; whatever
    # that home was (the one this ledger was copied from, too), the row now names checkpoints/<hero>/<id>.
    con.execute(
        """UPDATE checkpoints SET path = 'checkpoints/' || hero || '/' || checkpoint_id
           WHERE path IS NOT NULL AND path LIKE '/%'
             AND path LIKE '%/checkpoints/' || hero || '/' || checkpoint_id"""
    )


# Forward migrations, in order: (version it brings the schema to, the step).
MIGRATIONS: tuple[tuple[int, Callable[[duckdb.DuckDBPyConnection], None]], ...] = (
    (1, _migration_v1),
    (2, _migration_v2),
    (3, add_declared),  # v3: level_losses (per-level held-out loss: strain, effort, efficiency)
    (4, _migration_v4),  # v4: checkpoint paths relative to REALM_HOME
)


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema forward to SCHEMA_VERSION in one transaction; returns the version now in place."""
    con.execute(TABLES["schema_version"].ddl())
    current = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"ledger schema version {current} is newer than this realm ({SCHEMA_VERSION}): upgrade realm"
        )
    for version, step in MIGRATIONS:
        if version > current:
            con.execute("BEGIN TRANSACTION")
            try:
                step(con)
                con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            current = version
    # Additive changes (a new table, a new column) need no version: any declared one missing is added.
    have = dict(
        con.execute(
            "SELECT table_name, count(*) FROM duckdb_columns() WHERE NOT internal GROUP BY table_name"
        ).fetchall()
    )
    if any(have.get(name) != len(t.columns) for name, t in TABLES.items() if name != "schema_version"):
        add_declared(con)
    create_views(con)  # always: a ledger written by an older realm gets this realm's view definitions
    return current


# The one "current score": per (checkpoint, skill, level), the score under the protocol in force for its
# hero, skill and level: the one the running configuration declared (`protocols_in_force`), however
# old; a newer score under another protocol (another backend, dtype, library version) is stale, not
# current. A declared hero at a level no declaration covers (a level above a lowered cap, a skill whose
# code is gone) has no current score there: nothing the running code scores is comparable with it, and
# its level-ups stand as facts. Only a hero no configuration declares (its YAML removed, a ledger written
# before declarations) falls back to its newest protocol: its history as written, since nothing can
# re-score it. Stale rows stay in eval_scores until re-evaluated. Level-ups, regressions, the
# leaderboard, the mirror and the knowledge documents all read this view.
CURRENT_SCORES_VIEW = """
CREATE OR REPLACE VIEW current_scores AS
WITH newest AS (
    SELECT hero, skill, level, arg_max(protocol, struct_pack(t := created_at, p := protocol)) AS protocol
    FROM eval_scores WHERE sample = 'eval'
    GROUP BY hero, skill, level
), protocols AS (
    SELECT n.hero, n.skill, n.level,
        CASE WHEN n.hero IN (SELECT hero FROM protocols_in_force) THEN d.protocol ELSE n.protocol END AS protocol
    FROM newest n LEFT JOIN protocols_in_force d USING (hero, skill, level)
)
SELECT s.* FROM eval_scores s JOIN protocols p USING (hero, skill, level, protocol)
WHERE s.sample = 'eval'
QUALIFY row_number() OVER (
    PARTITION BY s.checkpoint_id, s.skill, s.level ORDER BY s.created_at DESC, s.fingerprint DESC) = 1
"""


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the derived views; cheap and idempotent."""
    con.execute(CURRENT_SCORES_VIEW)


def is_lock_error(exc: BaseException) -> bool:
    """True when DuckDB refused a connection because another process holds the file."""
    text = str(exc).lower()
    return isinstance(exc, duckdb.IOException) and ("lock" in text or "conflicting" in text)


@contextmanager
def connect(
    path: Path | str, *, read_only: bool = False, timeout_s: float = 60.0, config: dict | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the ledger for one short unit of work, waiting out another process's lock up to `timeout_s`.

    DuckDB allows one writing process per file, so writers hold the file only for the write and
    retry with backoff when it is busy; a reader that cannot wait passes `timeout_s=0`. `config` is
    DuckDB's connection configuration (threads, memory_limit, ...).
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=dict(config or {}))
            break
        except duckdb.IOException as exc:
            if not is_lock_error(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    try:
        yield con
    finally:
        con.close()


def insert_new(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> int:
    """Insert rows whose primary key is not there yet (facts: the first write stands); returns rows given."""
    if not rows:
        return 0
    names = [c.name for c in TABLES[table].columns]
    unknown = set(rows[0]) - set(names)
    if unknown:
        raise KeyError(f"table {table} has no column(s) {sorted(unknown)}")
    placeholders = ", ".join("?" for _ in names)
    con.executemany(
        f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES ({placeholders})",
        [[row.get(n) for n in names] for row in rows],
    )
    return len(rows)


def upsert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> int:
    """Insert rows, replacing any with the same primary key; returns the number written."""
    if not rows:
        return 0
    decl = TABLES[table]
    names = [c.name for c in decl.columns]
    unknown = set(rows[0]) - set(names)
    if unknown:
        raise KeyError(f"table {table} has no column(s) {sorted(unknown)}")
    values = [[row.get(n) for n in names] for row in rows]
    placeholders = ", ".join("?" for _ in names)
    con.executemany(f"INSERT OR REPLACE INTO {table} ({', '.join(names)}) VALUES ({placeholders})", values)
    return len(rows)
