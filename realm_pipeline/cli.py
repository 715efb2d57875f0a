"""`realm`: the verbs Dagster has no word for (init, doctor, campaign, ...)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import sys
import threading
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from realm_pipeline.campaign import ROLLUP_JOB, TRAIN_JOB, segment_budget
from realm_pipeline.settings import (
    DEFAULT_CONFIG_DIR,
    ConfigError,
    HeroConfig,
    Settings,
    ledger_path,
    realm_home,
)
from realm_pipeline.stop_signals import Stopped, ends_on_stop_signals, signals_seen

if TYPE_CHECKING:
    from collections.abc import Sequence

    import dagster as dg
    import duckdb

    from realm_pipeline.campaign import Decision, Step
    from realm_pipeline.evaluation.progression import LevelUp

INSTANCE_TEMPLATE = DEFAULT_CONFIG_DIR.parent / "dagster.yaml"
GPU_POOL = "gpu"


def dagster_home() -> Path:
    """$DAGSTER_HOME, default $REALM_HOME/dagster; exported so Dagster finds the same instance."""
    home = Path(os.environ.get("DAGSTER_HOME") or realm_home() / "dagster").resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def init_instance() -> Path:
    """Create REALM_HOME and the Dagster instance (settings from dagster.yaml, pool `gpu` limited to 1),
    or in cluster mode ($REALM_DAGSTER_PG_URL) the instance on that PostgreSQL, pool `gpu` = cluster.gpus."""
    import dagster as dg

    from realm_pipeline import cluster

    home = realm_home()
    for sub in ("checkpoints", "inbox/rejected", "knowledge"):  # mirror/ is a symlink the export swaps
        (home / sub).mkdir(parents=True, exist_ok=True)
    dhome = dagster_home()
    dhome.mkdir(parents=True, exist_ok=True)
    url = cluster.pg_url()
    slots = 1
    if url is not None:
        slots = _write_cluster_instance(dhome / "dagster.yaml", url)
    elif (dhome / "dagster.yaml").exists() and (dhome / "dagster.yaml").read_text().startswith(
        cluster.CLUSTER_MARK
    ):
        # a shell without the setting must not quietly swap a cluster home for a fresh local instance
        raise click.ClickException(
            f"{dhome / 'dagster.yaml'} is a cluster instance (PostgreSQL): set {cluster.PG_URL_ENV}, "
            "or use another DAGSTER_HOME"
        )
    elif (
        not (dhome / "dagster.yaml").exists()
        or (dhome / "dagster.yaml").read_bytes() != INSTANCE_TEMPLATE.read_bytes()
    ):
        shutil.copyfile(INSTANCE_TEMPLATE, dhome / "dagster.yaml")
    with dg.DagsterInstance.get() as instance:
        instance.event_log_storage.set_concurrency_slots(GPU_POOL, slots)
    return dhome


def cluster_gpus() -> int:
    """realm.yaml's cluster.gpus: the `gpu` pool's limit in cluster mode."""
    try:
        return Settings().realm.cluster.gpus
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _write_cluster_instance(target: Path, url: str) -> int:
    """Check the cluster's PostgreSQL, then write its dagster.yaml (owner-only: the URL may carry a
    password); returns the `gpu` pool's limit."""
    from realm_pipeline import cluster

    gpus = cluster_gpus()
    try:
        cluster.check_server(url)  # one line naming the server, not Dagster's retries and traceback
        text = cluster.instance_yaml(INSTANCE_TEMPLATE.read_text(), url, gpus)
    except cluster.ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    if not target.exists() or target.read_text() != text:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    target.chmod(0o600)
    return gpus


class RealmGroup(click.Group):
    """Commands whose storage fails for a reason a person can fix (a full disk, a read-only home) end
    in one line saying so, not in a storage engine's traceback."""

    def invoke(self, ctx: click.Context):
        """Run the command; a full disk or a read-only REALM_HOME becomes one line (exit 1)."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except ConfigError as exc:  # a config any command loads: the same line init and doctor give
            raise click.ClickException(str(exc)) from None
        except Exception as exc:
            line = storage_error_line(exc)
            if line is None:
                raise
            raise click.ClickException(line) from exc


def storage_error_line(exc: BaseException) -> str | None:
    """One line for a full disk or a home realm may not write (ledger, Dagster instance, checkpoints)."""
    from realm_pipeline.disk import disk_full_line

    home = realm_home()
    line = disk_full_line(exc, (home, dagster_home()))
    if line is not None:
        return f"{line}; free space and run it again: the campaign resumes where it stopped"
    denied = read_only_line(exc, (home, dagster_home()))
    if denied is not None:
        return f"{denied}: REALM_HOME={home} must be writable (check its permissions, or set REALM_HOME)"
    return None


def _not_writable(path: Path) -> bool:
    """True when `path` (or the nearest ancestor that exists) is on a read-only file system or not
    writable by this process."""
    from realm_pipeline.disk import existing_ancestor

    p = existing_ancestor(path)
    return bool(os.statvfs(p).f_flag & os.ST_RDONLY) or not os.access(p, os.W_OK)


def read_only_line(exc: BaseException, paths: tuple[Path, ...] = ()) -> str | None:
    """'cannot write ...' when `exc` is a refused write (EROFS, EACCES, EPERM, a read-only database, or
    SQLite's bare "unable to open database file" where `paths` are not writable), else None."""
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in seen:
        seen.append(e)
        if isinstance(e, PermissionError) or (isinstance(e, OSError) and e.errno == errno.EROFS):
            return f"cannot write {e.filename or ''} ({e.strerror or e})".replace("  ", " ")
        text = str(e)
        low = text.lower()
        first = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
        # DuckDB words EPERM (an immutable file, a mount that refuses writes) as its strerror
        refused = (
            "permission denied",
            "operation not permitted",
            "readonly database",
            "read-only file system",
        )
        if any(words in low for words in refused):
            return f"cannot write: {first}"
        if "unable to open database file" in low:
            blocked = [p for p in paths if _not_writable(p)]
            if blocked:
                return f"cannot write {blocked[0]} (read-only or not writable): {first}"
        e = e.__cause__ or e.__context__
    return None


@click.group(cls=RealmGroup)
def main() -> None:
    """realm: training campaigns for small language models, on Dagster."""
    # Dagster flags a Pipes internal as "preview" on every segment; it says nothing to a realm user.
    warnings.filterwarnings("ignore", message=".*is currently in preview.*")


@main.command()
def init() -> None:
    """Create REALM_HOME, the Dagster instance and the ledger; validate every config."""
    try:
        Settings().validate_all()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    dhome = init_instance()
    from realm_pipeline.defs.resources import LedgerResource

    with LedgerResource(database=str(ledger_path())).get_connection():
        pass  # creates and migrates the ledger
    from realm_pipeline import cluster

    url = cluster.pg_url()
    if url is None:
        click.echo(f"REALM_HOME={realm_home()}\nDAGSTER_HOME={dhome}\npool {GPU_POOL}: limit 1")
    else:
        click.echo(f"REALM_HOME={realm_home()}\nDAGSTER_HOME={dhome}")
        click.echo(f"instance: PostgreSQL {cluster.where(url)} (cluster mode)")
        click.echo(f"pool {GPU_POOL}: limit {cluster_gpus()}")


@main.command()
def doctor() -> None:
    """Check configs, paths and the accelerator; print what a campaign would use."""
    try:
        settings = Settings()
        settings.validate_all()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"configs: {settings.config_dir} (ok)")
    click.echo(f"heroes: {', '.join(settings.heroes)}  skills: {', '.join(settings.skills)}")
    click.echo(f"REALM_HOME: {realm_home()}  DAGSTER_HOME: {dagster_home()}")
    from realm_pipeline import cluster

    url = cluster.pg_url()
    if url is not None:
        click.echo(_cluster_instance_line(url))
    import torch

    cuda = torch.cuda.is_available()
    click.echo(f"torch {torch.__version__}; CUDA: {torch.cuda.get_device_name(0) if cuda else 'none (CPU)'}")


def _cluster_instance_line(url: str) -> str:
    """What doctor says of the cluster instance's PostgreSQL (version, writable, initialized), or one
    error line naming it."""
    from realm_pipeline import cluster

    try:
        found = cluster.check_server(url)
        current = cluster.instance_yaml(INSTANCE_TEMPLATE.read_text(), url, cluster_gpus())
    except cluster.ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    notes = ["writable"]
    if not found.dagster_tables:
        notes.append("no Dagster tables yet: run `realm init`")
    installed = dagster_home() / "dagster.yaml"
    if not installed.exists() or installed.read_text() != current:
        notes.append(f"{installed} is not this instance's: run `realm init`")
    return f"Dagster instance: PostgreSQL {found.version} at {cluster.where(url)} ({'; '.join(notes)})"


# Dagster's console logger prints every event (hundreds of DEBUG lines a campaign): the events still go
# to the instance (the UI shows them); the terminal gets one line per run unless --verbose.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# What the Pipes subprocess logs per training step (realm_pipeline.training.segment)
PROGRESS_LINE = re.compile(r"^step (\d+)/(\d+) loss ([0-9.naninf]+) .* tok/s (\d+)")


class SegmentProgress(threading.Thread):
    """A progress bar of one training run (steps, loss, tokens/s), read from the run's event log."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, label: str) -> None:
        super().__init__(daemon=True)
        self.instance, self.run_id, self.label = instance, run_id, label
        self.finished = threading.Event()
        self.bar = None

    def run(self) -> None:
        """Follow the run's Pipes log messages until `finish()`."""
        cursor = None
        while True:
            done = self.finished.wait(0.5)
            cursor = self._drain(cursor)
            if done:
                break
        if self.bar is not None:
            self.bar.close()

    def finish(self) -> None:
        """Read what is left of the log, close the bar and wait for the thread."""
        self.finished.set()
        self.join()

    def _drain(self, cursor: str | None) -> str | None:
        from tqdm import tqdm

        conn = self.instance.get_records_for_run(self.run_id, cursor=cursor)
        for record in conn.records:
            m = PROGRESS_LINE.match(record.event_log_entry.user_message or "")
            if not m:
                continue
            step, steps, loss, tok_s = int(m[1]), int(m[2]), m[3], int(m[4])
            if self.bar is None:
                self.bar = tqdm(
                    total=steps,
                    desc=f"  {self.label}",
                    unit="step",
                    file=sys.stdout,
                    dynamic_ncols=True,
                    mininterval=0.2 if sys.stdout.isatty() else 30.0,
                    bar_format="{desc} {bar:24} {n_fmt}/{total_fmt} steps {elapsed}{postfix}",
                )
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(f"loss {loss}  {tok_s} tok/s", refresh=False)
        return conn.cursor if conn.records else cursor


def _execute(
    job_name: str,
    partition_key: str | dg.MultiPartitionKey | None = None,
    *,
    verbose: bool = False,
    assets: tuple[str, ...] | None = None,
    tags: dict[str, str] | None = None,
) -> bool:
    """Run one job in this process, recorded in the Dagster instance; print one line; True on success."""
    import dagster as dg
    from dagster._utils.interrupts import capture_interrupts

    from realm_pipeline.definitions import build_defs

    # Built for this REALM_HOME now: the module's `defs` was built for whatever it was at first import.
    from realm_pipeline.defs.training.workers import IN_PROCESS_TAG, WORKER_TAG, worker_id

    defs = build_defs()
    run_id = str(uuid.uuid4())
    # who runs it: if this process dies, the next `realm campaign` / `realm status` sees it and retries
    tags = {**(tags or {}), WORKER_TAG: worker_id(), IN_PROCESS_TAG: "true"}
    started = time.monotonic()
    # Dagster's advice for a process that executes runs: a stop signal is held from here until a step can
    # take it as its interrupt, so none leaves a run half-created (NOT_STARTED, waited on for ever).
    with dg.DagsterInstance.get() as instance, signals_seen() as stops, capture_interrupts():
        progress = None
        if job_name == TRAIN_JOB and not verbose:
            progress = SegmentProgress(instance, run_id, str(partition_key))
            progress.start()
        try:
            # Dagster turns Ctrl-C and SIGTERM inside a step into its interrupt (a segment saves where it
            # stops): `stops` notes them so the campaign ends here instead of starting the next run.
            result = defs.resolve_job_def(job_name).execute_in_process(
                instance=instance,
                partition_key=partition_key,
                raise_on_error=False,
                run_id=run_id,
                run_config=None if verbose else QUIET_RUN_CONFIG,
                asset_selection=[dg.AssetKey(a) for a in assets] if assets else None,
                tags=tags,
            )
        finally:
            if progress is not None:
                progress.finish()
    status = "ok" if result.success else "FAILED"
    if not result.success:
        with dg.DagsterInstance.get() as instance:
            run = instance.get_run_by_id(run_id)
        if run is not None and run.status == dg.DagsterRunStatus.CANCELED:
            status = "CANCELED"
    partition = str(partition_key) if partition_key is not None else "-"
    click.echo(
        f"{job_name:<13} {partition:<18} {status:<6} {time.monotonic() - started:6.1f}s  run {run_id[:8]}"
    )
    if not result.success:
        from realm_pipeline.defs.campaign.decision import run_error_line

        with dg.DagsterInstance.get() as instance:
            error = run_error_line(instance, run_id)
        if error:
            click.echo(f"  {error}")
    if stops:
        _stopped_by(stops[0], run_id, status, result.success)
    return result.success


def _stopped_by(signum: int, run_id: str, status: str, success: bool) -> None:
    """End the command after a run a stop signal reached: a run it stopped is acknowledged for retry, so
    the next `realm campaign` resumes it (from the segment's save) without a person."""
    import signal

    import dagster as dg

    from realm_pipeline.defs.training.workers import acknowledge_stopped

    if not success:
        with dg.DagsterInstance.get() as instance:
            acknowledge_stopped(instance, run_id, signal.Signals(signum).name)
    raise Stopped(signum, None if success else f"{run_id[:8]} {status.lower()}")


def _quiet_deepspeed(hero: HeroConfig) -> None:
    """Tell DeepSpeed (which transformers imports in the training subprocess) that a CPU-only machine
    has no accelerator, instead of letting it warn about its failed search on every segment."""
    if hero.base.kind == "simulated":
        return  # no model: neither torch nor DeepSpeed is imported anywhere on its path
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def _decide(hero: str, settings: Settings) -> Decision:
    """What HERO needs next: the same decision the campaign sensor makes."""
    import dagster as dg

    from realm_pipeline.defs.campaign.decision import hero_decision

    with dg.DagsterInstance.get() as instance, _ledger().read() as con:
        return hero_decision(instance, con, settings, hero)


def _notice_dead_runs() -> None:
    """Report runs whose worker died (a killed `realm campaign`, a reboot) failed, so they are retried."""
    import dagster as dg

    from realm_pipeline.defs.training.workers import fail_dead_runs

    with dg.DagsterInstance.get() as instance:
        for line in fail_dead_runs(instance):
            click.echo(line)


def _confirm_drops(done: set[str], *, verbose: bool) -> int:
    """Run the confirming re-runs the regression sensor would raise for the newest leaderboard check;
    returns how many of them failed."""
    import dagster as dg

    from realm_pipeline.defs.evaluation.sensors import confirming_requests

    with dg.DagsterInstance.get() as instance:
        _, requests = confirming_requests(instance)
    failed = 0
    for req in requests:
        if req.run_key not in done:
            done.add(req.run_key)
            failed += not _execute("eval_job", req.partition_key, verbose=verbose, tags=req.tags)
    return failed


def _execute_step(step: Step, *, verbose: bool) -> bool:
    """Run one step of a decision (a new checkpoint's partition is added first)."""
    import dagster as dg

    from realm_pipeline.campaign import EVAL_JOB

    partition = step.partition
    if step.job == TRAIN_JOB:
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("checkpoints", [step.partition])
    elif step.job == EVAL_JOB:
        partition = dg.MultiPartitionKey({"checkpoint": step.checkpoint, "skill": step.skill})
    return _execute(step.job, partition, verbose=verbose, assets=step.assets)


def _hero_settings(hero: str) -> Settings:
    settings = Settings()
    if hero not in settings.heroes:
        raise click.ClickException(f"no hero {hero!r} (known: {', '.join(settings.heroes)})")
    return settings


KNOWN_SHOWN = 6  # the newest checkpoint keys an error lists


def unknown_checkpoint(con: duckdb.DuckDBPyConnection, key: str) -> str:
    """One line for a checkpoint key the ledger lacks: its hero's registered keys, and how to add one."""
    from realm_pipeline.training.plan import CheckpointKey

    try:
        hero = CheckpointKey.parse(key).hero
    except ValueError:
        hero = None
    heroes = Settings().heroes
    if hero not in heroes:
        return f"no checkpoint {key!r}: a key is <hero>.<step, 6 digits> (heroes: {', '.join(heroes)})"
    rows = con.execute(
        "SELECT checkpoint_id FROM checkpoints WHERE hero = ? ORDER BY step", [hero]
    ).fetchall()
    keys = [r[0] for r in rows]
    known = ", ".join(keys[-KNOWN_SHOWN:]) if keys else "none yet"
    more = f"{len(keys) - KNOWN_SHOWN} older and " if len(keys) > KNOWN_SHOWN else ""
    return (
        f"no checkpoint {key!r} in the ledger {ledger_path()} (registered: {more}{known}); "
        f"`realm train {hero}` trains {hero}'s next one"
    )


def _print_hero_sheet(hero: str, settings: Settings, why: str) -> None:
    """The hero sheet: levels, champion, zone, the leaderboard's top rows and what it does next."""
    from realm_pipeline.campaign import (
        cap_calls_of,
        curriculum_state,
        ground_truth,
        hero_checkpoints,
        truth_summary,
    )

    with _ledger().read() as con:
        state = curriculum_state(con, settings, hero)
        sheet = state.hero_sheet()
        calls = cap_calls_of(con, hero, state)
        truth = ground_truth(con, settings, hero)
        ckpts = hero_checkpoints(con, hero)
        tops = con.execute(
            "SELECT bench, lane, round(accuracy, 3), round(chance_accuracy, 3) FROM leaderboard_rows "
            "WHERE hero = ? AND rank = 1 "
            "ORDER BY bench",
            [hero],
        ).fetchall()
    # in words: "bin L1" alone read as a level held when it is only the one being learned
    levels = "; ".join(state.skills[skill].describe() for skill in sorted(state.skills)) or "-"
    click.echo(f"hero {hero}")
    click.echo(f"  segments   {len(ckpts)} (latest {ckpts[-1]['checkpoint_id'] if ckpts else '-'})")
    click.echo(f"  levels     {levels}")
    click.echo(f"  level-ups  {_level_ups_line(state.level_ups, settings)}")
    if truth is not None:  # a simulated hero: what it can really hold, to judge realm's call against
        click.echo(f"  truth      {truth_summary(truth)}")
    click.echo(f"  champion   {sheet['champion'] or '-'}")
    hint = f"  (hint: {sheet['hint']})" if sheet["hint"] else ""
    click.echo(f"  zone       {sheet['zone'] or '-'}{hint}")
    for bench, lane, acc, chance in tops:  # chance: what always giving the commonest answer scores
        click.echo(f"  #1 {bench:<8} {lane} accuracy {acc} (chance {chance if chance is not None else '-'})")
    _print_verdicts(sheet)
    for call in calls:  # each cap call, judged by the level-ups after it
        click.echo(f"  cap call   {call.summary()}")
    _print_unconfirmed(hero)
    click.echo(f"  status     {why}")


LEVEL_UPS_SHOWN = 3  # the newest level-ups the sheet names


def _level_ups_line(ups: Sequence[LevelUp], settings: Settings) -> str:
    """The sheet's level-ups: how many, the newest named; with none, the rule that earns one."""
    if not ups:
        prog = settings.realm.progression
        return (
            f"none yet (a level is earned by {prog.evals_required} evals in a row at "
            f">= {prog.level_up_accuracy:.2f} accuracy)"
        )
    named = ", ".join(f"{u.skill} L{u.mastered} at {u.checkpoint_id}" for u in ups[-LEVEL_UPS_SHOWN:])
    return f"{len(ups)} ({'latest: ' if len(ups) > LEVEL_UPS_SHOWN else ''}{named})"


def _announce_level_ups(
    hero: str, settings: Settings, announced: set[tuple[str, int, str]], *, quiet: bool = False
) -> None:
    """A line for each of HERO's level-ups not in `announced` (then added): the game's move, as it lands."""
    from realm_pipeline.campaign import curriculum_state

    with _ledger().read() as con:
        ups = curriculum_state(con, settings, hero).level_ups
    for u in ups:
        if (u.skill, u.mastered, u.checkpoint_id) in announced:
            continue
        announced.add((u.skill, u.mastered, u.checkpoint_id))
        if not quiet:
            click.echo(_level_up_line(hero, u, settings))


def _level_up_line(hero: str, up: LevelUp, settings: Settings) -> str:
    """One level-up as the campaign announces it: what was earned, where, by which rule, and what is next."""
    prog = settings.realm.progression
    after = "its cap: complete" if up.mastered == up.level else f"learning L{up.level} next"
    return (
        f"LEVEL UP  {hero} {up.skill} L{up.mastered} earned at {up.checkpoint_id}: {prog.evals_required} "
        f"evals in a row at >= {prog.level_up_accuracy:.2f} (the last {up.accuracy:.2f}); {after}"
    )


def _print_verdicts(sheet: dict) -> None:
    """One line per skill: its verdict, the evidence and why; a line per level its learning knocked down."""
    for skill, v in sorted(sheet.get("verdicts", {}).items()):
        mult = "undefined" if v["multiplier"] is None else f"{v['multiplier']:.2f}x"
        earned = (
            ", ".join(f"L{lv} {t if t is not None else '?'}" for lv, t in v["earned_tokens"].items()) or "-"
        )
        click.echo(
            f"  {skill:<10} L{v['level']} {v['verdict']}: multiplier {mult}; earned (tokens) {earned}; "
            f"maintenance {v['maintenance_tokens']} tokens in {v['maintenance_segments']} segments; {v['reason']}"
        )
        for e in v["knocked_down"]:
            trend = "-" if e["trend_since_drop"] is None else f"{e['trend_since_drop']:+.3f}/eval"
            state = "regressed" if e["recovered_step"] is None else f"recovered at step {e['recovered_step']}"
            click.echo(
                f"    knocked down {e['skill']} L{e['level']} at step {e['onset_step']} ({e['status']}), "
                f"{state}, {e['accuracy']:.2f} now, trend since the drop {trend}"
            )
        for f in v.get("forgotten", []):  # the cap rule's evidence (evaluation/cap_rule.py)
            what = "every mastered level pooled" if f["level"] == 0 else f"L{f['level']}"
            mends = "may still mend by itself" if f["recovering"] else "not mending"
            click.echo(
                f"    lost {what} since step {f['onset_step']} (learning L{f['learning_at_onset']}): "
                f"{f['accuracy']:.2f}, upper bound {f['upper_bound']:.2f} < the threshold, {f['lost_tests']} "
                f"tests, maintenance in {f['maintenance_segments']} segments, {mends}"
                + ("; counts toward a cap" if f["counts"] else "")
            )


def _print_unconfirmed(hero: str) -> None:
    """Drops whose confirming re-run failed: neither confirmed nor refuted, so said out loud."""
    import dagster as dg

    from realm_pipeline.defs.evaluation.sensors import unconfirmed_regressions

    with dg.DagsterInstance.get() as instance:
        for u in unconfirmed_regressions(instance, hero):
            click.echo(
                f"  UNCONFIRMED regression {u['bench']} of {u['checkpoint']}: "
                f"its confirming run {u['run_id'][:8]} failed (re-run it: realm campaign)"
            )


def ui_hint(hero: str, settings: Settings, decision: Decision) -> str:
    """How to open this instance in the Dagster UI, and what its running sensors will then do."""
    # both homes on make's command line: they override the Makefile's defaults, whatever the shell exports
    line = f"Dagster UI: make dev REALM_HOME={realm_home()} DAGSTER_HOME={dagster_home()}"
    if decision.stop:
        return f"{line}  (its sensors train {hero} no further: {decision.stop})"
    active = settings.realm.campaign.active_heroes
    if hero not in active:  # the sensors train only campaign.active_heroes (configs/realm.yaml)
        return (
            f"{line}  (its sensors train {', '.join(active) or 'no hero'}, not {hero}: "
            f"`realm campaign --hero {hero}` goes on with it)"
        )
    budget = segment_budget(settings, hero)
    return (
        f"{line}  (its sensors resume the campaign: {hero} trains on up to its budget of {budget} "
        f"segments; `realm pause {hero}` first to only look)"
    )


@main.command()
@click.option("--hero", default="tiny", show_default=True, help="hero config name (configs/heroes/)")
@click.option(
    "--segments",
    default=3,
    show_default=True,
    type=click.IntRange(min=0),
    help="segments to train in this invocation (0: only evaluate and roll up what is there)",
)
@click.option(
    "--past-cap",
    type=click.IntRange(min=0),
    default=None,
    help="segments to train on after a cap call, so the call can be judged (default: the hero's "
    "campaign.past_cap, 0: stop at the call)",
)
@click.option(
    "--verbose", is_flag=True, help="print Dagster's event log too (it always goes to the instance)"
)
@ends_on_stop_signals
def campaign(hero: str, segments: int, past_cap: int | None, verbose: bool) -> None:
    """Run a short campaign of HERO end to end, every step a run in the Dagster instance.

    The same decision the campaign sensor makes under `dg dev`: eval sets, then per segment
    train -> evaluate every skill -> rollup, until SEGMENTS are trained, a pause, the budget,
    maxed out (or PAST_CAP segments after the cap call) or a failed run.
    """
    settings = _hero_settings(hero)
    if past_cap is not None:  # this invocation's decisions only: the sensors keep the hero YAML's
        cfg = settings.heroes[hero]
        settings.heroes[hero] = cfg.model_copy(
            update={"campaign": cfg.campaign.model_copy(update={"past_cap": past_cap})}
        )
    init_instance()
    if not verbose:
        _quiet_deepspeed(settings.heroes[hero])
    click.echo(f"campaign {hero}: up to {segments} segment(s); REALM_HOME={realm_home()}")
    _notice_dead_runs()
    trained, done, failures = 0, set(), 0  # failures: runs this invocation started that failed
    announced: set[tuple[str, int, str]] = set()
    _announce_level_ups(hero, settings, announced, quiet=True)  # earlier invocations' are not news
    while True:
        decision = _decide(hero, settings)
        steps = [s for s in decision.steps if not (s.job == TRAIN_JOB and trained >= segments)]
        if not steps:
            break
        for step in steps:
            if step.run_key in done:  # a step that succeeded and is still wanted: never loop on it
                raise click.ClickException(f"{hero}: {step.job} {step.partition or ''} changed nothing")
            done.add(step.run_key)
            ok = _execute_step(step, verbose=verbose)
            trained += step.job == TRAIN_JOB
            if ok and step.job == ROLLUP_JOB:  # the rollup records level-ups: say so as they land
                _announce_level_ups(hero, settings, announced)
            if not ok:
                failures += 1
                break  # the next decision names the failure
        failures += _confirm_drops(done, verbose=verbose)
        if decision.stop:
            break
    if decision.stop or decision.waiting_on or not any(s.job == TRAIN_JOB for s in decision.steps):
        why = decision.status
    else:
        why = f"{segments} segment(s) trained as asked; next {decision.steps[-1].partition} (run again to go on)"
    _print_hero_sheet(hero, settings, why)
    click.echo(f"mirror: {realm_home() / 'mirror' / 'index.html'}  (open it in a browser; no server needed)")
    click.echo(ui_hint(hero, settings, decision))
    if decision.failed or failures or decision.short_of_space or decision.unloadable:
        # a run it started failed for good (none is retried in-process), the disk is too full to go on,
        # or its newest checkpoint cannot be loaded
        if failures:
            click.echo(f"{hero}: {failures} run(s) this campaign started failed", err=True)
        if decision.short_of_space or decision.unloadable:
            click.echo(f"{hero}: {decision.short_of_space or decision.unloadable}", err=True)
        sys.exit(1)


def _ledger():
    from realm_pipeline.defs.resources import LedgerResource

    return LedgerResource(database=str(ledger_path()))


@main.command()
@click.argument("hero")
@click.option("--verbose", is_flag=True, help="print Dagster's event log too")
@ends_on_stop_signals
def train(hero: str, verbose: bool) -> None:
    """Train HERO's next segment, if that is what it needs next (else say what it needs)."""
    settings = _hero_settings(hero)
    init_instance()
    if not verbose:
        _quiet_deepspeed(settings.heroes[hero])
    _notice_dead_runs()
    decision = _decide(hero, settings)
    train_steps = [s for s in decision.steps if s.job == TRAIN_JOB]
    if not train_steps:
        raise click.ClickException(
            f"{hero}: {decision.status}"
            + ("" if decision.stop else f" (`realm campaign --hero {hero}` runs it)")
        )
    if not _execute_step(train_steps[0], verbose=verbose):
        sys.exit(1)


@main.command()
@click.argument("heroes", nargs=-1)
def status(heroes: tuple[str, ...]) -> None:
    """The hero sheet of HEROES (default: the active ones): levels, champion, zone, what comes next."""
    settings = Settings()
    init_instance()
    _notice_dead_runs()
    for hero in heroes or settings.realm.campaign.active_heroes:
        if hero not in settings.heroes:
            raise click.ClickException(f"no hero {hero!r} (known: {', '.join(settings.heroes)})")
        _print_hero_sheet(hero, settings, _decide(hero, settings).status)


@main.command()
@click.argument("hero")
def retry(hero: str) -> None:
    """Retry what stopped HERO: its failed run gets a new run key the campaign sensor requests."""
    import dagster as dg

    from realm_pipeline.defs.campaign.decision import acknowledge_failures

    settings = _hero_settings(hero)
    init_instance()
    _notice_dead_runs()
    decision = _decide(hero, settings)
    if not decision.failed:
        click.echo(f"{hero}: nothing failed to retry ({decision.status})")
        return
    with dg.DagsterInstance.get() as instance:
        acknowledge_failures(instance, decision)
    for run in decision.failed:
        click.echo(f"{hero}: retrying {run.describe()}")
    click.echo(
        f"the campaign sensor requests it again on its next tick; `realm campaign --hero {hero}` runs it now"
    )


def _set_paused(hero: str, paused: bool) -> None:
    _hero_settings(hero)
    with _ledger().get_connection() as con:
        con.execute(
            """INSERT INTO hero_state (hero, paused, updated_at) VALUES (?, ?, now())
               ON CONFLICT (hero) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at""",
            [hero, paused],
        )
    click.echo(f"{hero}: {'paused' if paused else 'resumed'}")


@main.command()
@click.argument("hero")
def pause(hero: str) -> None:
    """Stop the campaign sensor from training HERO further."""
    _set_paused(hero, True)


@main.command()
@click.argument("hero")
def resume(hero: str) -> None:
    """Let the campaign sensor train HERO again."""
    _set_paused(hero, False)


@main.command()
@click.argument("lane_a")
@click.argument("lane_b")
@click.option("--skill", default="bin", show_default=True)
@click.option("--level", default=1, show_default=True)
@click.option("--items", default=16, show_default=True, help="prompts from the level's held-out eval set")
def compare(lane_a: str, lane_b: str, skill: str, level: int, items: int) -> None:
    """Run checkpoints LANE_A and LANE_B side by side on one prompt set, scored by the skill's rubric."""
    from realm_pipeline.campaign import unloadable_checkpoint
    from realm_pipeline.compare import compare_checkpoints

    if lane_a == lane_b:  # a tie by construction: a row of it would only skew the preference votes
        raise click.UsageError(f"{lane_a} compared with itself: name two different checkpoints")
    settings = Settings()
    _check_prompt_set(settings, skill, level, items)
    with _ledger().read() as con:
        rows = {
            cid: (path, deleted_at)
            for cid, path, deleted_at in con.execute(
                "SELECT checkpoint_id, path, deleted_at FROM checkpoints WHERE checkpoint_id IN (?, ?)",
                [lane_a, lane_b],
            ).fetchall()
        }
        for lane in (lane_a, lane_b):
            if lane not in rows:
                raise click.ClickException(unknown_checkpoint(con, lane))
    paths = {}
    for lane in (lane_a, lane_b):
        directory, problem = unloadable_checkpoint(lane, *rows[lane], realm_home())
        if problem is not None:  # deleted, missing or truncated: said before any model is loaded
            raise click.ClickException(problem)
        paths[lane] = str(directory)
    from realm_pipeline.evaluation.backends import BackendError
    from realm_pipeline.lm.budgets import BudgetError

    try:
        row = compare_checkpoints(
            lane_a,
            paths[lane_a],
            lane_b,
            paths[lane_b],
            skill=skill,
            level=level,
            count=items,
            eval_settings=settings.realm.eval,
        )
    except (BudgetError, BackendError) as exc:  # answers beyond the eval ceiling; unloadable weights
        raise click.ClickException(str(exc)) from exc
    with _ledger().get_connection() as con:
        from realm_pipeline import ledger

        ledger.upsert(con, "compare_runs", [row])
    click.echo(
        f"compare {row['compare_id']}: {lane_a} {row['rubric_a']:.2f} vs {lane_b} {row['rubric_b']:.2f} "
        f"on {row['prompt_set']}\nvote with: realm pref {row['compare_id']} A|B|tie [--note TEXT]"
    )


def _check_prompt_set(settings: Settings, skill: str, level: int, items: int) -> None:
    """Refuse, with the valid choices, a --skill, --level or --items no eval set can give."""
    from realm_pipeline.settings import MAX_EVAL_ITEMS_PER_LEVEL
    from realm_pipeline.skills import SKILLS
    from realm_pipeline.skills.heldout import eval_size

    if skill not in settings.skills:
        raise click.UsageError(
            f"--skill {skill!r}: no such skill; valid: {', '.join(sorted(settings.skills))}"
        )
    cap = settings.skills[skill].level_cap
    if not 1 <= level <= cap:
        raise click.UsageError(f"--level {level}: {skill} has levels 1 to {cap} (its level_cap)")
    most = eval_size(SKILLS[skill], level, MAX_EVAL_ITEMS_PER_LEVEL)
    if not 1 <= items <= most:
        raise click.UsageError(f"--items {items}: {skill} L{level} holds 1 to {most} held-out prompts")


@main.command()
@click.argument("compare_id")
@click.argument("choice", type=click.Choice(["A", "B", "tie"], case_sensitive=False))
@click.option("--note", default=None, help="a private note (never published)")
def pref(compare_id: str, choice: str, note: str | None) -> None:
    """Record a human preference vote on a compare run."""
    import getpass
    import uuid

    from realm_pipeline import ledger

    with _ledger().get_connection() as con:
        if not con.execute("SELECT 1 FROM compare_runs WHERE compare_id = ?", [compare_id]).fetchone():
            raise click.ClickException(f"no compare run {compare_id!r}: run `realm compare A B` first")
        ledger.upsert(
            con,
            "human_prefs",
            [
                {
                    "compare_id": compare_id,
                    "vote_id": uuid.uuid4().hex,
                    "choice": choice.lower(),
                    "note": note,
                    "voter": getpass.getuser(),
                    "created_at": datetime.now(UTC).replace(tzinfo=None),
                }
            ],
        )
    _report_vote(compare_id)
    click.echo(f"vote recorded: {compare_id} {choice}")


def _report_vote(compare_id: str) -> None:
    """Tell Dagster the external `human_votes` asset changed, so staleness_sensor re-ranks the leaderboard."""
    import dagster as dg

    init_instance()  # idempotent: the instance the votes' readers (the UI, staleness_sensor) use
    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization("human_votes", metadata={"compare_id": compare_id})
        )


@main.command()
@click.option(
    "--keep-newest",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="per hero (at least 1: the newest is the next segment's parent)",
)
@click.option(
    "--keep-best", default=3, show_default=True, type=click.IntRange(min=0), help="per hero and bench"
)
@click.option("--apply", "apply_", is_flag=True, help="really delete (default: dry run)")
def retain(keep_newest: int, keep_best: int, apply_: bool) -> None:
    """Checkpoint retention: newest and best k per hero kept, and all referenced ones, never the champion
    or a level-up's checkpoint, nor a checkpoint a queued or running segment or eval needs."""
    import dagster as dg

    from realm_pipeline.definitions import build_defs

    init_instance()
    defs = build_defs()
    config = {"keep_newest": keep_newest, "keep_best": keep_best, "dry_run": not apply_}
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("retention_job").execute_in_process(
            instance=instance,
            run_config={"ops": {"apply_checkpoint_retention": {"config": config}}, **QUIET_RUN_CONFIG},
        )
    click.echo(
        f"{'deleted' if apply_ else 'would delete'} {result.output_for_node('apply_checkpoint_retention')}"
    )


@main.command()
@click.argument("question")
@click.option("-k", default=5, show_default=True, help="how many chunks")
def ask(question: str, k: int) -> None:
    """Top chunks of the knowledge index for QUESTION, with their provenance."""
    from realm_pipeline.defs.knowledge.assets import run_ask

    click.echo(run_ask(question, k=k))


@main.group()
def quest() -> None:
    """Quest files: people's own training examples (JSONL of chat `messages`)."""


@quest.command("add")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def quest_add(path: str) -> None:
    """Drop PATH into the inbox; the quest inbox sensor validates and registers it."""
    from realm_pipeline.quests import add_to_inbox

    dest = add_to_inbox(Path(path), realm_home())
    click.echo(
        f"queued {dest}: quest_inbox_sensor registers it, or moves it to inbox/rejected/ with a report"
    )
