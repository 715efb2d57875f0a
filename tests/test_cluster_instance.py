"""Cluster mode's Dagster instance on a real PostgreSQL (pgserver, on a local socket): `realm init` writes
it, runs and their events land in PostgreSQL, the daemon's run queue dequeues a run, `realm doctor` checks
the server. The embedded default stays byte for byte what it was."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml
from click.testing import CliRunner

from realm_pipeline import cluster
from realm_pipeline.cli import INSTANCE_TEMPLATE, main

REPO = Path(__file__).resolve().parent.parent
SKILL = "bin"


def _start_server(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs on XDG_RUNTIME_DIR
        import pgserver

    return pgserver.get_server(path, cleanup_mode="stop")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """One PostgreSQL for the module, as pgserver gives its URL (plain postgresql://, psycopg 3's scheme
    under SQLAlchemy 2.1: realm must name the driver itself)."""
    # Not under pytest's basetemp: as root, pgserver runs postgres as user `pgserver` (see test_knowledge).
    scratch = Path(tempfile.mkdtemp(prefix="realm-cluster-"))
    server = _start_server(scratch / "pg")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def cluster_home(
    pg_url: str, config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str]:
    """A REALM_HOME in cluster mode on a fresh database of the module's server, realm.yaml's
    cluster.gpus = 2; returns (home, the database URL)."""
    import psycopg2

    db = f"realm_{os.getpid()}_{time.monotonic_ns()}"
    conn = psycopg2.connect(cluster.libpq_url(pg_url))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
    conn.close()
    url = cluster.libpq_url(pg_url).replace("/postgres?", f"/{db}?", 1)
    _set_gpus(config_dir, 2)
    home = tmp_path / "home"
    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("REALM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv(cluster.PG_URL_ENV, url)
    return home, url


@contextmanager
def _children_gone() -> Iterator[None]:
    """On the way out, pass or fail: wait for the code server and run worker this test started, killing
    any left after 60 s. A code server still shutting down when the module's PostgreSQL stops retries its
    connection and outlives the test."""
    try:
        yield
    finally:
        _, alive = psutil.wait_procs(psutil.Process().children(recursive=True), timeout=60)
        for proc in alive:
            proc.kill()
    assert not alive, f"still running after 60 s: {alive}"


def _set_gpus(config_dir: Path, gpus: int) -> None:
    path = config_dir / "realm.yaml"
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**config, "cluster": {"gpus": gpus}}))


def _rows(url: str, sql: str, *args: object) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(cluster.libpq_url(url))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def test_the_url_names_psycopg2_and_never_shows_its_password() -> None:
    for given in ("postgres://u:pw@h:5/d", "postgresql://u:pw@h:5/d", "postgresql+psycopg://u:pw@h:5/d"):
        assert cluster.dagster_url(given) == "postgresql+psycopg2://u:pw@h:5/d"
        assert cluster.libpq_url(given) == "postgresql://u:pw@h:5/d"
        assert cluster.where(given) == "u@h:5/d"
    assert cluster.where("postgresql://postgres:@/db?host=/run/pg") == "postgres@/run/pg/db"
    with pytest.raises(cluster.ClusterError, match="REALM_DAGSTER_PG_URL: mysql scheme"):
        cluster.dagster_url("mysql://u@h/d")


def test_cluster_config_is_the_embedded_one_plus_postgres_and_the_queue() -> None:
    embedded = yaml.safe_load(INSTANCE_TEMPLATE.read_text())
    config = yaml.safe_load(cluster.instance_yaml(INSTANCE_TEMPLATE.read_text(), "postgres://u@h/d", 3))
    assert config["storage"] == {"postgres": {"postgres_url": "postgresql+psycopg2://u@h/d"}}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_monitoring"] == {
        **embedded["run_monitoring"],
        "free_slots_after_run_end_seconds": cluster.FREE_SLOTS_AFTER_RUN_END_SECONDS,
    }
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 4 + 2  # a run slot per extra GPU
    assert config["concurrency"]["pools"] == embedded["concurrency"]["pools"]
    assert config["run_retries"] == embedded["run_retries"] and config["telemetry"] == embedded["telemetry"]
    assert set(config) == set(embedded) | {"storage", "run_coordinator"}


def test_embedded_init_is_unchanged(
    tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the setting (and with a cluster block in realm.yaml) `realm init` copies the template as it
    always did: SQLite storage, pool `gpu` at 1, the same three lines."""
    monkeypatch.delenv(cluster.PG_URL_ENV, raising=False)
    _set_gpus(config_dir, 3)
    home = tmp_path / "home"
    monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("REALM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    done = CliRunner().invoke(main, ["init"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert done.output == f"REALM_HOME={home}\nDAGSTER_HOME={home / 'dagster'}\npool gpu: limit 1\n"
    assert (home / "dagster" / "dagster.yaml").read_bytes() == INSTANCE_TEMPLATE.read_bytes()
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1
    doctor = CliRunner().invoke(main, ["doctor"], catch_exceptions=False)
    assert doctor.exit_code == 0 and "Dagster instance" not in doctor.output


def test_cluster_instance_stores_runs_and_events_in_postgres(cluster_home: tuple[Path, str]) -> None:
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from realm_pipeline.definitions import build_defs

    home, url = cluster_home
    done = CliRunner().invoke(main, ["init"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert f"instance: PostgreSQL {cluster.where(url)} (cluster mode)\npool gpu: limit 2\n" in done.output
    written = home / "dagster" / "dagster.yaml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600  # the URL may carry a password
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 2
        # every event of a real realm run passes Dagster's `NOTIFY run_events` (psycopg 3 fails on it)
        result = (
            build_defs()
            .resolve_job_def("eval_sets_job")
            .execute_in_process(instance=instance, partition_key=SKILL)
        )
        assert result.success
        stored = instance.get_records_for_run(result.run_id).records
    ((status,),) = _rows(url, "SELECT status FROM runs WHERE run_id = %s", result.run_id)
    ((events,),) = _rows(url, "SELECT count(*) FROM event_logs WHERE run_id = %s", result.run_id)
    assert status == "SUCCESS" and events == len(stored) > 5
    assert _rows(url, "SELECT count(*) FROM concurrency_limits WHERE concurrency_key = 'gpu'") == [(1,)]

    doctor = CliRunner().invoke(main, ["doctor"], catch_exceptions=False)
    assert doctor.exit_code == 0, doctor.output
    # a shell that forgot the setting is told so, and leaves the cluster instance as it is
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(cluster.PG_URL_ENV)
        forgot = CliRunner().invoke(main, ["init"])
    assert forgot.exit_code == 1 and f"set {cluster.PG_URL_ENV}" in forgot.output.splitlines()[-1]
    assert written.read_text().startswith(cluster.CLUSTER_MARK)
    (line,) = [x for x in doctor.output.splitlines() if x.startswith("Dagster instance:")]
    assert line.startswith("Dagster instance: PostgreSQL 16") and line.endswith(
        f"{cluster.where(url)} (writable)"
    )
    _set_gpus(Path(os.environ["REALM_CONFIG_DIR"]), 3)  # changed since `realm init`
    doctor = CliRunner().invoke(main, ["doctor"], catch_exceptions=False)
    assert f"(writable; {written} is not this instance's: run `realm init`)" in doctor.output


@pytest.mark.slow  # a code server and a run worker process: 30-80 s on a shared 2-core machine
def test_the_daemon_queue_dequeues_a_run_whose_worker_writes_to_postgres(
    cluster_home: tuple[Path, str],
) -> None:
    """A submitted run waits QUEUED until the daemon's queue launches it; the run worker (another
    process, as on another machine) writes its events to the same PostgreSQL."""
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    from realm_pipeline.definitions import build_defs

    home, url = cluster_home
    assert CliRunner().invoke(main, ["init"], catch_exceptions=False).exit_code == 0
    target = ModuleTarget(
        module_name="realm_pipeline.definitions",
        attribute=None,
        working_directory=str(REPO),
        location_name="realm",
    )
    with (
        _children_gone(),
        dg.DagsterInstance.get() as instance,
        create_test_daemon_workspace_context(target, instance) as context,
    ):
        (entry,) = context.create_request_context().get_code_location_entries().values()
        assert entry.code_location is not None, entry.load_error
        (repo,) = entry.code_location.get_repositories().values()
        remote_job = repo.get_full_job("eval_sets_job")
        run = instance.create_run_for_job(
            job_def=build_defs().resolve_job_def("eval_sets_job"),
            tags={"dagster/partition": SKILL},
            run_config={"execution": {"config": {"in_process": {}}}},  # one worker process, not two
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
        )
        instance.submit_run(run.run_id, context.create_request_context())
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.QUEUED
        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(context))
        deadline = time.monotonic() + 240
        while instance.get_run_by_id(run.run_id).status not in (
            dg.DagsterRunStatus.SUCCESS,
            dg.DagsterRunStatus.FAILURE,
        ):
            assert time.monotonic() < deadline, "the dequeued run did not finish in 240 s"
            time.sleep(1)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS
    kinds = {
        k for (k,) in _rows(url, "SELECT dagster_event_type FROM event_logs WHERE run_id = %s", run.run_id)
    }
    expected = ("RUN_ENQUEUED", "RUN_STARTING", "RUN_START", "ASSET_MATERIALIZATION", "RUN_SUCCESS")
    assert {dg.DagsterEventType[k].value for k in expected} <= kinds


def test_doctor_names_the_instance_server_that_is_down(
    tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="realm-cluster-down-"))
    try:
        server = _start_server(scratch / "pg")
        url = server.get_uri()
        server.cleanup()  # stopped: its socket is gone
        monkeypatch.setenv("REALM_CONFIG_DIR", str(config_dir))
        monkeypatch.setenv("REALM_HOME", str(tmp_path / "home"))
        monkeypatch.setenv(cluster.PG_URL_ENV, url)
        for command in ("doctor", "init"):
            done = CliRunner().invoke(main, [command])
            assert done.exit_code == 1
            last = done.output.strip().splitlines()[-1]
            assert last.startswith(
                f"Error: Dagster instance PostgreSQL {cluster.where(url)}: not reachable: "
            )
            assert "Traceback" not in done.output
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
