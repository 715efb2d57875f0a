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
from realm_pipeline.defs.knowledge.resources import VectorIndexResource
from realm_pipeline.settings import (
    CONFIG_DIR_ENV,
    DEFAULT_CONFIG_DIR,
    Settings,
    ledger_path,
    realm_home,
)


class RealmResource(dg.ConfigurableResource):
    """Validated configs and the state directory of one campaign."""

    config_dir: str = str(DEFAULT_CONFIG_DIR)
    home: str

    @cached_property
    def settings(self) -> Settings:
        """Every config file, validated."""
        return Settings(self.config_dir)

    @property
    def home_path(self) -> Path:
        """$REALM_HOME."""
        return Path(self.home)

    def checkpoint_dir(self, hero: str, checkpoint_id: str) -> Path:
        """Where one checkpoint's save_pretrained output lives."""
        return self.home_path / "checkpoints" / hero / checkpoint_id


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


@dg.definitions
def resources() -> dg.Definitions:
    """Every resource the assets, checks and sensors name, for the REALM_HOME of this process."""
    home = str(realm_home())
    config_dir = os.environ.get(CONFIG_DIR_ENV, str(DEFAULT_CONFIG_DIR))
    return dg.Definitions(
        resources={
            "realm": RealmResource(home=home, config_dir=config_dir),
            "ledger_db": LedgerResource(database=str(ledger_path())),
            "pipes_subprocess_client": dg.PipesSubprocessClient(),
            "vector_index": VectorIndexResource(home=home, dsn=os.environ.get("REALM_PG_DSN")),
        },
    )
