"""The shared resources: `realm` (configs and REALM_HOME) and `ledger_db` (the DuckDB ledger), bound here.

The @dg.definitions function binds every resource the defs folder uses, for the REALM_HOME of this process.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from realm_pipeline import ledger
from realm_pipeline.defs.knowledge.resources import DSN_ENV, VectorIndexResource
from realm_pipeline.settings import Settings, find_config_dir, ledger_path, realm_home


class RealmResource(dg.ConfigurableResource):
    """Validated configs and the state directory of one campaign."""

    config_dir: str = ""  # empty: find_config_dir() ($REALM_CONFIG_DIR, ./configs, the shipped defaults)
    home: str

    @cached_property
    def settings(self) -> Settings:
        """Every config file, validated."""
        return Settings(self.config_dir or None)

    @property
    def home_path(self) -> Path:
        """$REALM_HOME."""
        return Path(self.home)

    def checkpoint_dir(self, hero: str, checkpoint_id: str) -> Path:
        """Where one checkpoint's save_pretrained output lives."""
        return self.home_path / "checkpoints" / hero / checkpoint_id


class LedgerBusy(RuntimeError):
    """Another process holds the ledger file; a sensor skips its tick rather than fail."""


class LedgerLocked(LedgerBusy, dg.RetryRequested):
    """A step waited the whole lock timeout for another process: Dagster retries the step, the run goes on.

    A RetryRequested escalates before any RetryPolicy, so only a lock (never a real error) is retried this
    way, `lock_retries` times `lock_retry_wait_s` apart; sensors catch it as a LedgerBusy and skip a tick.
    """

    def __init__(self, message: str, *, max_retries: int, seconds_to_wait: float) -> None:
        dg.RetryRequested.__init__(self, max_retries=max_retries, seconds_to_wait=seconds_to_wait)
        self.args = (message,)


class LedgerResource(DuckDBResource):
    """`$REALM_HOME/realm.duckdb`, migrated on first write; connections are held only for one unit of work.

    Honours its whole configuration: `database`, `connection_config` (DuckDB settings) and `lock_timeout_s`.
    """

    lock_timeout_s: float = 120.0
    lock_retries: int = 5  # step retries after a wait for the lock ran out (each waits lock_timeout_s again)
    lock_retry_wait_s: float = 30.0

    def _locked(self, exc: duckdb.IOException) -> LedgerLocked:
        return LedgerLocked(
            f"ledger {self.database} is busy (locked by another process past {self.lock_timeout_s:g} s): "
            f"{exc}; the step is retried up to {self.lock_retries} times",
            max_retries=self.lock_retries,
            seconds_to_wait=self.lock_retry_wait_s,
        )

    @contextmanager
    def _open(self, *, read_only: bool, timeout_s: float) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection; a lock still held after `timeout_s` raises LedgerLocked (errors inside pass through)."""
        opened = ledger.connect(
            self.database, read_only=read_only, timeout_s=timeout_s, config=self.connection_config
        )
        try:
            con = opened.__enter__()
        except duckdb.IOException as exc:
            if ledger.is_lock_error(exc):
                raise self._locked(exc) from exc
            raise
        try:
            yield con
        finally:
            opened.__exit__(None, None, None)

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection, migrated to the current schema; waits out other writers, then LedgerLocked."""
        with self._open(read_only=False, timeout_s=self.lock_timeout_s) as con:
            ledger.migrate(con)
            yield con

    @contextmanager
    def read(self, *, wait: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection; a busy file raises LedgerLocked (a LedgerBusy), at once with wait=False."""
        if not Path(self.database).exists():
            with self.get_connection():
                pass  # a fresh ledger: create the tables before the first read
        with self._open(read_only=True, timeout_s=self.lock_timeout_s if wait else 0.0) as con:
            yield con


@dg.definitions
def resources() -> dg.Definitions:
    """Every resource the assets, checks and sensors name, for the REALM_HOME of this process."""
    home = str(realm_home())
    config_dir = str(find_config_dir())  # $REALM_CONFIG_DIR, ./configs, or the shipped defaults
    return dg.Definitions(
        resources={
            "realm": RealmResource(home=home, config_dir=config_dir),
            "ledger_db": LedgerResource(database=str(ledger_path())),
            "pipes_subprocess_client": dg.PipesSubprocessClient(),
            # EnvVar, not the value: the UI's Resources page shows the variable's name, never the password
            "vector_index": VectorIndexResource(
                home=home, dsn=dg.EnvVar(DSN_ENV) if os.environ.get(DSN_ENV) else None
            ),
        },
    )
