"""Cluster mode: the Dagster instance on a shared PostgreSQL, switched on by $REALM_DAGSTER_PG_URL.

Pure: builds the instance's dagster.yaml and checks the server; imports no Dagster.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import yaml

PG_URL_ENV = "REALM_DAGSTER_PG_URL"
# dagster-postgres is written for psycopg2. SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3, whose
# server-side parameters turn Dagster's `NOTIFY run_events, :id` into `NOTIFY ..., $1`, a syntax error on
# every stored event; so the driver is named in the URL Dagster gets, whatever the user wrote.
DAGSTER_SCHEME = "postgresql+psycopg2"
_PG_SCHEME = re.compile(r"^(postgres|postgresql)(\+[a-z0-9_]+)?$")
# A run that ended (failed, killed worker marked failed by monitoring) gives its `gpu` slots back after
# this long, so a GPU held by a dead run returns to the pool without a person.
FREE_SLOTS_AFTER_RUN_END_SECONDS = 60
CONNECT_TIMEOUT_S = 5
CLUSTER_MARK = "# realm's Dagster instance in cluster mode"  # the first line of a cluster dagster.yaml


class ClusterError(ValueError):
    """The cluster setting is unusable or its PostgreSQL cannot serve the instance: one line for a person."""


def pg_url() -> str | None:
    """$REALM_DAGSTER_PG_URL when set (cluster mode), else None (the embedded SQLite instance)."""
    return os.environ.get(PG_URL_ENV, "").strip() or None


def dagster_url(url: str) -> str:
    """The URL with psycopg2 named as its driver (postgres://, postgresql:// or postgresql+<any>://)."""
    parts = urlsplit(url)
    if not _PG_SCHEME.match(parts.scheme or ""):
        raise ClusterError(
            f"{PG_URL_ENV}: {parts.scheme or 'no'} scheme: expected postgresql://user@host:port/database"
        )
    return urlunsplit(parts._replace(scheme=DAGSTER_SCHEME))


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg2.connect) reads it: plain postgresql://."""
    return urlunsplit(urlsplit(dagster_url(url))._replace(scheme="postgresql"))


def where(url: str) -> str:
    """user@host:port/database of the URL, never its password (a socket directory counts as the host)."""
    parts = urlsplit(url)
    host = parts.hostname or parse_qs(parts.query).get("host", ["localhost"])[0]
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{user}{host}{port}{parts.path or '/'}"


def instance_config(embedded: dict[str, Any], url: str, gpus: int) -> dict[str, Any]:
    """The embedded instance's settings with runs, events and schedules in PostgreSQL and runs queued."""
    config = dict(embedded)
    concurrency = dict(config.get("concurrency", {}))
    runs = dict(concurrency.get("runs", {}))
    # one more run slot per GPU past the first: runs waiting for a `gpu` slot must not starve the rest
    runs["max_concurrent_runs"] = runs.get("max_concurrent_runs", 4) + gpus - 1
    config["concurrency"] = {**concurrency, "runs": runs}
    # Dagster 1.13 reads this under run_monitoring (its daemon's concurrency monitor), not concurrency.pools
    config["run_monitoring"] = {
        **config.get("run_monitoring", {}),
        "enabled": True,
        "free_slots_after_run_end_seconds": FREE_SLOTS_AFTER_RUN_END_SECONDS,
    }
    return {
        "storage": {"postgres": {"postgres_url": dagster_url(url)}},
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"},
        **config,
    }


def instance_yaml(embedded_yaml: str, url: str, gpus: int) -> str:
    """The cluster dagster.yaml `realm init` writes: the embedded template's settings plus PostgreSQL."""
    config = instance_config(yaml.safe_load(embedded_yaml), url, gpus)
    return (
        f"{CLUSTER_MARK}, written by `realm init` from ${PG_URL_ENV} and\n"
        "# realm_pipeline/dagster.yaml (edit those, not this file): runs, events and schedules live in\n"
        f"# PostgreSQL; the `gpu` pool's limit ({gpus}) is realm.yaml's cluster.gpus.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )


@dataclass(frozen=True)
class ServerCheck:
    """What `realm doctor` found on the instance's PostgreSQL."""

    version: str
    dagster_tables: bool  # Dagster's run storage exists (`realm init` has run against this database)


def check_server(url: str) -> ServerCheck:
    """Connect with Dagster's driver, read the server version and prove a write (rolled back);
    raise ClusterError naming the server when it is not reachable or not writable."""
    import psycopg2

    name = f"Dagster instance PostgreSQL {where(url)}"
    try:
        conn = psycopg2.connect(libpq_url(url), connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg2.Error as exc:
        raise ClusterError(f"{name}: not reachable: {_first_line(exc)}") from None
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            (version,) = cur.fetchone()
            cur.execute("SELECT to_regclass('runs') IS NOT NULL")
            (tables,) = cur.fetchone()
            try:
                # a table in the schema Dagster writes, inside a transaction that is rolled back: proves
                # CREATE and INSERT rights and a primary (a standby refuses both), leaves nothing behind
                cur.execute("SET LOCAL statement_timeout = '5s'")
                cur.execute(f"CREATE TABLE realm_doctor_{os.getpid()} (x int)")
                cur.execute(f"INSERT INTO realm_doctor_{os.getpid()} VALUES (1)")
            except psycopg2.Error as exc:
                raise ClusterError(
                    f"{name} (PostgreSQL {version}): not writable: {_first_line(exc)}"
                ) from None
            finally:
                conn.rollback()
    except psycopg2.Error as exc:
        raise ClusterError(f"{name}: {_first_line(exc)}") from None
    finally:
        conn.close()
    return ServerCheck(version=version.split()[0], dagster_tables=bool(tables))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
