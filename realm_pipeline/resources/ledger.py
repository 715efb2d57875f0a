"""The ledger resource: realm's DuckDB file, on dagster-duckdb's DuckDBResource."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster_duckdb import DuckDBResource

from realm_pipeline import ledger


class LedgerBusy(RuntimeError):
    """Another process holds the ledger file; a sensor skips its tick rather than fail."""


class LedgerResource(DuckDBResource):
    """`$REALM_HOME/realm.duckdb`, migrated on first write; connections are held only for one unit of work."""

    lock_timeout_s: float = 120.0

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection, migrated to the current schema; waits out other writers."""
        with ledger.connect(self.database, timeout_s=self.lock_timeout_s) as con:
            ledger.migrate(con)
            yield con

    @contextmanager
    def read(self, *, wait: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection; with wait=False a busy file raises LedgerBusy at once."""
        try:
            if not Path(self.database).exists():
                with self.get_connection():
                    pass  # a fresh ledger: create the tables before the first read
            with ledger.connect(
                self.database, read_only=True, timeout_s=self.lock_timeout_s if wait else 0.0
            ) as con:
                yield con
        except duckdb.IOException as exc:
            if ledger.is_lock_error(exc):
                raise LedgerBusy(f"ledger {self.database} is busy: {exc}") from exc
            raise
