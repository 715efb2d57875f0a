"""The `vector_index` resource: PostgreSQL + pgvector, from REALM_PG_DSN or embedded in $REALM_HOME/pg/."""

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from realm_pipeline.settings import realm_home

DSN_ENV = "REALM_PG_DSN"


class VectorIndexResource(dg.ConfigurableResource):
    """A pgvector database: `dsn` (or $REALM_PG_DSN) when set, else an embedded server started per run."""

    dsn: str | None = None
    home: str | None = None  # default: $REALM_HOME

    _server: Any = PrivateAttr(default=None)
    _uri: str | None = PrivateAttr(default=None)

    @property
    def pgdata(self) -> Path:
        """Data directory of the embedded server."""
        return Path(self.home or realm_home()) / "pg"

    @property
    def resolved_dsn(self) -> str | None:
        """The external database to use, if any: config first, then the environment."""
        return self.dsn or os.environ.get(DSN_ENV) or None

    @property
    def server_pid(self) -> int | None:
        """Postmaster pid of the embedded server this resource started (None when external or stopped)."""
        return None if self._server is None else self._server.get_pid()

    def start(self) -> str:
        """Start (or attach to) the database and create the schema; returns its URI."""
        if self._uri is not None:
            return self._uri
        uri = self.resolved_dsn
        if uri is None:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (containers); pgserver falls back to /tmp.
                warnings.simplefilter("ignore")
                import pgserver

            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            # get_server attaches to a postmaster already running on this directory (another step's)
            # and refcounts handles by pid, so only the last process to let go stops it.
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
            uri = self._server.get_uri()
        self._uri = uri
        with self._connect() as conn:
            from realm_pipeline.knowledge.store import ensure_schema

            ensure_schema(conn)
        return uri

    def stop(self) -> None:
        """Stop the embedded server if this process started it and holds its last handle."""
        server, self._server, self._uri = self._server, None, None
        if server is not None:
            server.cleanup()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Start the database before the step runs."""
        self.start()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Stop the embedded server when the step is done."""
        self.stop()

    @contextmanager
    def running(self) -> Iterator["VectorIndexResource"]:
        """Start, then stop on exit: for use outside Dagster (CLI, tests, benches)."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def _connect(self) -> Any:
        import psycopg

        assert self._uri is not None
        # autocommit: store functions open explicit transactions; reads never hold a snapshot open.
        return psycopg.connect(self._uri, autocommit=True)

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        """A psycopg connection (autocommit, vector type registered), closed on exit."""
        from pgvector.psycopg import register_vector

        self.start()
        with self._connect() as conn:
            register_vector(conn)
            yield conn
