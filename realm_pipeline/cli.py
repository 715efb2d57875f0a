"""`realm`: the verbs Dagster has no word for (init, doctor, campaign, ...)."""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import click

from realm_pipeline.settings import DEFAULT_CONFIG_DIR, ConfigError, Settings, ledger_path, realm_home

INSTANCE_TEMPLATE = DEFAULT_CONFIG_DIR.parent / "dagster.yaml"
GPU_POOL = "gpu"


def dagster_home() -> Path:
    """$DAGSTER_HOME, default $REALM_HOME/dagster; exported so Dagster finds the same instance."""
    home = Path(os.environ.get("DAGSTER_HOME") or realm_home() / "dagster").resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def init_instance() -> Path:
    """Create REALM_HOME and the Dagster instance (settings from dagster.yaml, pool `gpu` limited to 1)."""
    import dagster as dg

    home = realm_home()
    for sub in ("checkpoints", "inbox/rejected", "knowledge"):  # mirror/ is a symlink the export swaps
        (home / sub).mkdir(parents=True, exist_ok=True)
    dhome = dagster_home()
    dhome.mkdir(parents=True, exist_ok=True)
    if (
        not (dhome / "dagster.yaml").exists()
        or (dhome / "dagster.yaml").read_bytes() != INSTANCE_TEMPLATE.read_bytes()
    ):
        shutil.copyfile(INSTANCE_TEMPLATE, dhome / "dagster.yaml")
    with dg.DagsterInstance.get() as instance:
        instance.event_log_storage.set_concurrency_slots(GPU_POOL, 1)
    return dhome


@click.group()
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
    click.echo(f"REALM_HOME={realm_home()}\nDAGSTER_HOME={dhome}\npool {GPU_POOL}: limit 1")


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
    import torch

    cuda = torch.cuda.is_available()
    click.echo(f"torch {torch.__version__}; CUDA: {torch.cuda.get_device_name(0) if cuda else 'none (CPU)'}")


def _execute(job_name: str, partition_key: str | None = None) -> None:
    """Run one job in this process, recorded in the Dagster instance; exit non-zero on failure."""
    import dagster as dg

    from realm_pipeline.definitions import defs

    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, partition_key=partition_key, raise_on_error=False
        )
    status = "ok" if result.success else "FAILED"
    click.echo(
        f"run {result.run_id[:8]} {job_name}{f' [{partition_key}]' if partition_key else ''}: {status}"
    )
    if not result.success:
        sys.exit(1)


@main.command()
@click.option("--hero", default="tiny", show_default=True, help="hero config name (configs/heroes/)")
@click.option("--segments", default=3, show_default=True, help="segments to train in this invocation")
def campaign(hero: str, segments: int) -> None:
    """Run a short campaign of HERO end to end, every step a run in the Dagster instance.

    The same steps the campaign sensor raises under `dagster dev`: eval sets, then per segment
    train -> evaluate every skill -> curriculum + leaderboard, until the budget, a pause or maxed out.
    """
    import dagster as dg

    from realm_pipeline.campaign import campaign_blocker, hero_checkpoints
    from realm_pipeline.defs.resources import LedgerResource
    from realm_pipeline.training.plan import next_key

    settings = Settings()
    if hero not in settings.heroes:
        raise click.ClickException(f"no hero {hero!r} (known: {', '.join(settings.heroes)})")
    cfg = settings.heroes[hero]
    init_instance()
    for skill in cfg.campaign.skills:
        _execute("eval_sets_job", skill)
    ledger_db = LedgerResource(database=str(ledger_path()))
    for _ in range(segments):
        with ledger_db.read() as con:
            blocker = campaign_blocker(con, settings, hero)
            ckpts = hero_checkpoints(con, hero)
        if blocker:
            click.echo(f"{hero}: campaign stops: {blocker}")
            break
        key = str(next_key(cfg, ckpts[-1]["step"] if ckpts else None))
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("checkpoints", [key])
        _execute("train_job", key)
        for skill in cfg.campaign.skills:
            _execute("eval_job", dg.MultiPartitionKey({"checkpoint": key, "skill": skill}))
        _execute("rollup_job")
    with ledger_db.read() as con:
        rows = con.execute(
            "SELECT bench, lane, rank, round(accuracy, 3) FROM leaderboard_rows "
            "WHERE rank <= 1 ORDER BY bench"
        ).fetchall()
        levels = con.execute("SELECT levels_json, champion FROM hero_state WHERE hero = ?", [hero]).fetchone()
    click.echo(f"{hero}: levels {levels[0] if levels else '{}'}; champion {levels[1] if levels else None}")
    for bench, lane, rank, acc in rows:
        click.echo(f"  {bench:<12} #{rank} {lane} accuracy {acc}")
    click.echo(f"mirror: {realm_home() / 'mirror' / 'index.html'}  (open it in a browser; no server needed)")
    click.echo(f"Dagster UI: DAGSTER_HOME={dagster_home()} make dev")


def _ledger():
    from realm_pipeline.defs.resources import LedgerResource

    return LedgerResource(database=str(ledger_path()))


@main.command()
@click.argument("hero")
def train(hero: str) -> None:
    """Add HERO's next checkpoint partition and materialize it (one training segment)."""
    import dagster as dg

    from realm_pipeline.campaign import campaign_blocker, hero_checkpoints
    from realm_pipeline.training.plan import next_key

    settings = Settings()
    if hero not in settings.heroes:
        raise click.ClickException(f"no hero {hero!r} (known: {', '.join(settings.heroes)})")
    init_instance()
    with _ledger().read() as con:
        blocker = campaign_blocker(con, settings, hero)
        ckpts = hero_checkpoints(con, hero)
    if blocker:
        raise click.ClickException(f"{hero}: {blocker}")
    key = str(next_key(settings.heroes[hero], ckpts[-1]["step"] if ckpts else None))
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("checkpoints", [key])
    _execute("train_job", key)


def _set_paused(hero: str, paused: bool) -> None:
    if hero not in Settings().heroes:
        raise click.ClickException(f"no hero {hero!r}")
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
    from realm_pipeline.compare import compare_checkpoints

    with _ledger().read() as con:
        paths = dict(
            con.execute(
                "SELECT checkpoint_id, path FROM checkpoints WHERE checkpoint_id IN (?, ?)", [lane_a, lane_b]
            ).fetchall()
        )
    for lane in (lane_a, lane_b):
        if lane not in paths:
            raise click.ClickException(f"no checkpoint {lane!r} in the ledger {ledger_path()}")
        if paths[lane] is None:
            raise click.ClickException(f"checkpoint {lane!r} was deleted by retention; its files are gone")
    from realm_pipeline.evaluation.budgets import BudgetError

    try:
        row = compare_checkpoints(
            lane_a,
            paths[lane_a],
            lane_b,
            paths[lane_b],
            skill=skill,
            level=level,
            count=items,
            eval_settings=Settings().realm.eval,
        )
    except BudgetError as exc:  # the level's answers do not fit the eval ceiling
        raise click.ClickException(str(exc)) from exc
    with _ledger().get_connection() as con:
        from realm_pipeline import ledger

        ledger.upsert(con, "compare_runs", [row])
    click.echo(
        f"compare {row['compare_id']}: {lane_a} {row['rubric_a']:.2f} vs {lane_b} {row['rubric_b']:.2f} "
        f"on {row['prompt_set']}\nvote with: realm pref {row['compare_id']} A|B|tie [--note TEXT]"
    )


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
    click.echo(f"vote recorded: {compare_id} {choice}")


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
    """Checkpoint retention: newest and best k per hero kept, and all referenced ones, never the champion,
    nor a checkpoint a queued or running segment or eval needs."""
    import dagster as dg

    from realm_pipeline.definitions import defs

    init_instance()
    config = {"keep_newest": keep_newest, "keep_best": keep_best, "dry_run": not apply_}
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("retention_job").execute_in_process(
            instance=instance, run_config={"ops": {"apply_checkpoint_retention": {"config": config}}}
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
