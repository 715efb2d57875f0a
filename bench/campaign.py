"""A real campaign of the tiny hero from nothing, and what its claim rests on.

Runs `realm campaign` (every step a Dagster run, as `make run` does) for a hero built like `tiny` on
`bin` and two drills, with the budget you choose, into a fresh REALM_HOME. Then prints, per evaluated
checkpoint: the level of every skill, the held-out accuracy at the level being learned and its trend,
the maintenance multiplier over the maxed-out window, and the strain zone; and why the campaign stopped.

Side by side, the *baseline*: the maxed-out rule realm used before (stalled level-ups, or a rate under
half the earlier one, while the window's maintenance multiplier exceeds the maximum), replayed on the
same history, with the segment at which it would have declared a cap.

    .venv/bin/python bench/campaign.py --segments 40 [--home DIR] [--skills bin,seq_reverse,attn_count]

Arms for the schedule across segments (training.schedule): one campaign per schedule, same segments x
steps and the same seeds (the hero's seed and the checkpoint keys), each in HOME/<schedule>; then a table
of levels reached, held-out accuracy of every mastered level at the last checkpoint, and wall time:

    .venv/bin/python bench/campaign.py --skills bin --segments 9 --schedules restart,carry,continuous

Whose cap it is (issue 18): per seed, three arms at equal segments x steps, each a real campaign:
(a) the curriculum before issue 18 (`curriculum: pooled` replay, the per-segment `restart` schedule, no
preview; the old cap rule replayed on its history), (b) realm's curriculum (tiny's training keys, or
--schedule, --preview-share, --preview-levels, --mastered-share), (c) none (`curriculum: uniform`, one
continuous schedule, levels 1..K+1 of each skill, K the highest level (b) reached):

    .venv/bin/python bench/campaign.py --arms --skills bin,seq_reverse,attn_count --segments 12 --seeds 1234,99

The hero's size at equal wall time (issue 18 item 8): one campaign per size, each stopped after --minutes
(--segments is then a ceiling and the budget a continuous schedule decays over):

    .venv/bin/python bench/campaign.py --skills bin --segments 200 --minutes 60 \
        --model hidden_size=192,num_hidden_layers=4 --home /tmp/size192

Where a segment's wall time goes (every run): the training steps themselves (tokens / tokens_per_s),
the trainer's whole loop (steps, held-out losses, saves), the train run, the eval runs and the rollup runs
(Dagster's own start and end times), and the rest (run launches, the campaign's polling): printed after
the report, with the share of the segment's wall that is not training steps.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
HERO = "tiny_bench"


def write_configs(
    dest: Path,
    skills: list[str],
    budget: int,
    schedule: str | None = None,
    segment_steps: int | None = None,
    seed: int | None = None,
    uniform_levels: int | None = None,
    curriculum: str | None = None,
    training: dict[str, float | int | bool] | None = None,
    model: dict[str, int] | None = None,
) -> Path:
    """A copy of configs/ with the bench hero: tiny's model and training, these skills and budget (and
    the LR schedule across segments, steps per segment, the hero's seed, for the no-curriculum arm the
    top level of its uniform mix, `training` keys over tiny's, `model` keys over its model config, when
    given)."""
    shutil.copytree(REPO / "configs", dest)
    hero = yaml.safe_load((dest / "heroes" / "tiny.yaml").read_text())
    hero["name"] = HERO
    hero["campaign"]["skills"] = skills
    if seed is not None:
        hero["seed"] = seed
    if uniform_levels is not None:
        hero["campaign"]["curriculum"] = "uniform"
        hero["campaign"]["uniform_levels"] = uniform_levels
    elif curriculum is not None:
        hero["campaign"]["curriculum"] = curriculum
    if schedule:
        hero["training"]["schedule"] = schedule
    hero["training"].update(training or {})
    hero["base"]["config"].update(model or {})
    if segment_steps:
        hero["campaign"]["segment_steps"] = segment_steps
    realm = yaml.safe_load((dest / "realm.yaml").read_text())
    prog = realm["progression"]
    if schedule and budget < prog["evals_required"] + prog["maxed_out_window"]:
        # A short schedule arm: its budget is the segments it runs (continuous decays over exactly
        # those), so the maxed-out window shrinks to fit; no cap is judged in so few segments anyway.
        prog["maxed_out_window"] = max(2, budget - prog["evals_required"])
        prog["maintenance_min"] = min(prog["maintenance_min"], prog["maxed_out_window"])
    # realm refuses a budget in which the level cap could never be found
    hero["campaign"]["segment_budget"] = max(budget, prog["evals_required"] + prog["maxed_out_window"])
    (dest / "heroes" / f"{HERO}.yaml").write_text(yaml.safe_dump(hero, sort_keys=False))
    realm["campaign"]["active_heroes"] = [HERO]
    (dest / "realm.yaml").write_text(yaml.safe_dump(realm, sort_keys=False))
    return dest


def old_rule(
    timeline, ups_at: dict[str, int], tokens: dict[str, float], window: int, maintenance_max: float
) -> int | None:
    """Baseline: the first evaluated checkpoint (1-based) at which the old maxed-out rule fired: a stall
    (no level-up in the window, or a rate under half the earlier one) while the window's multiplier, with
    the old floor (maintenance tokens / max(earning tokens, the window's mean segment)), exceeds the max."""
    n_ups = [ups_at.get(r.checkpoint_id, 0) for r in timeline]
    costs = [tokens.get(r.checkpoint_id, 0.0) for r in timeline]
    for i in range(window, len(timeline) + 1):
        lo = i - window
        recent = sum(n_ups[lo:i]) / window
        earlier = sum(n_ups[:lo]) / lo if lo else None
        stalled = recent == 0 or (earlier is not None and recent < earlier / 2)
        maint = sum(c for c, r in zip(costs[lo:i], timeline[lo:i], strict=True) if r.maintenance)
        prog = sum(c for c, u in zip(costs[lo:i], n_ups[lo:i], strict=True) if u)
        floor = sum(costs[lo:i]) / window
        if stalled and max(prog, floor) > 0 and maint / max(prog, floor) > maintenance_max:
            return i
    return None


def report(home: Path, config_dir: Path, wall_s: float) -> None:
    """Print the per-segment table, the claim, why the campaign stopped, and the baseline's verdict."""
    os.environ["REALM_CONFIG_DIR"] = str(config_dir)
    from realm_pipeline import ledger
    from realm_pipeline.campaign import curriculum_state
    from realm_pipeline.settings import Settings

    settings = Settings(config_dir)
    prog = settings.realm.progression
    with ledger.connect(home / "realm.duckdb", read_only=True) as con:
        state = curriculum_state(con, settings, HERO)
        # what the hero does next or why it stopped, as the campaign's one decision function put it
        row = con.execute("SELECT status FROM hero_state WHERE hero = ?", [HERO]).fetchone()
        blocker = row[0] if row else None
        tokens = dict(
            con.execute("SELECT checkpoint_id, tokens FROM checkpoints WHERE hero = ?", [HERO]).fetchall()
        )
        shares = dict(
            ((s, lv), share)
            for s, lv, share in con.execute(
                "SELECT skill, level, shared_facts_share FROM eval_sets"
            ).fetchall()
        )
    skills = list(state.skills)
    head = f"{'seg':>3} {'step':>6}  " + "  ".join(f"{s + ' L/acc/trend':<26}" for s in skills)
    print(head + f"  {'maint.x':>7}  zone")
    for i, row in enumerate(state.timeline, 1):
        cells = []
        for s in skills:
            acc, trend = row.accuracy.get(s), row.trend.get(s)
            cells.append(
                f"L{row.levels[s]:<2} {'-' if acc is None else f'{acc:.2f}':>5} "
                f"{'  n/a' if trend is None else f'{trend:+.3f}':>7}"
                + (" R" + ",".join(map(str, row.regressed[s])) if row.regressed.get(s) else "")
            )
        zone = row.to_json()["zone"] or "-"
        print(
            f"{i:>3} {row.step:>6}  "
            + "  ".join(f"{c:<26}" for c in cells)
            + f"  {'undef.' if row.window_multiplier is None else f'{row.window_multiplier:.2f}':>7}  {zone}"
        )
    ups = {}
    for u in state.level_ups:
        ups[u.checkpoint_id] = ups.get(u.checkpoint_id, 0) + 1
    fired = old_rule(state.timeline, ups, tokens, prog.maxed_out_window, prog.maintenance_multiplier_max)
    print()
    print(f"claim: {state.cap_claim()}")
    print(f"stopped: {blocker or 'the --segments given to realm campaign ran out'}")
    print(f"levels reached: {state.levels()}  (level-ups: {len(state.level_ups)})")
    for s in skills:
        low = [
            f"L{lv}={shares[(s, lv)]:.2f}" for lv in range(1, state.skills[s].level + 1) if (s, lv) in shares
        ]
        print(f"shared-facts share of eval items, {s}: {' '.join(low)}")
    print(
        f"baseline (old maxed-out rule, replayed): "
        f"{'would have declared a cap at segment ' + str(fired) if fired else 'never fired'}; "
        f"realm: {'cap at segment ' + str(len(state.timeline)) if state.maxed_out else 'no cap'}"
    )
    print(f"wall time {wall_s / 60:.1f} min for {len(state.timeline)} segments on {os.cpu_count()} cores")


def time_breakdown(home: Path) -> list[dict]:
    """Per segment (train run start to the next one's): seconds of training steps, the trainer's loop, the
    train run, the eval runs, the rollup runs and the rest, from the ledger and the Dagster instance."""
    import dagster as dg

    from realm_pipeline import ledger

    with ledger.connect(home / "realm.duckdb", read_only=True) as con:
        trained = {
            ckpt: (tokens / max(rate, 1e-9), wall)
            for ckpt, tokens, rate, wall in con.execute(
                "SELECT checkpoint_id, tokens, tokens_per_s, wall_s FROM checkpoints WHERE hero = ?", [HERO]
            ).fetchall()
        }
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    with dg.DagsterInstance.get() as instance:
        records = [
            r
            for r in instance.get_run_records(ascending=True, order_by="create_timestamp")
            if r.start_time and r.end_time
        ]
    trains = [r for r in records if r.dagster_run.job_name == "train_job"]
    rows = []
    for i, train in enumerate(trains):
        start = train.start_time
        stop = trains[i + 1].start_time if i + 1 < len(trains) else max(r.end_time for r in records)
        inside = [r for r in records if start <= r.start_time < stop and r is not train]
        ckpt = train.dagster_run.tags.get("dagster/partition", "")
        steps_s, loop_s = trained.get(ckpt, (float("nan"), float("nan")))

        evals = [r for r in inside if "eval" in r.dagster_run.job_name]
        others = [
            r for r in inside if r not in evals
        ]  # rollups (curriculum, leaderboard, mirror) and the rest
        wall = stop - start
        row = {
            "checkpoint": ckpt,
            "steps_s": steps_s,
            "loop_s": loop_s,
            "train_run_s": train.end_time - train.start_time,
            "eval_s": sum(r.end_time - r.start_time for r in evals),
            "rollup_s": sum(r.end_time - r.start_time for r in others),
            "runs": len(inside) + 1,
            "wall_s": wall,
        }
        # runs may overlap (an eval beside a rollup); what no run covers is launch and polling time
        covered = _union_seconds([(r.start_time, min(r.end_time, stop)) for r in [train, *inside]])
        row["idle_s"] = wall - covered
        rows.append(row)
    return rows


def _union_seconds(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one (start, end) span."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def print_breakdown(rows: list[dict]) -> None:
    """The per-segment table of time_breakdown and the overhead share over all segments."""
    cols = ("steps_s", "loop_s", "train_run_s", "eval_s", "rollup_s", "idle_s", "wall_s")
    print("\n| checkpoint | " + " | ".join(cols) + " | not training |")
    print("|---" * (len(cols) + 2) + "|")
    for r in rows:
        share = 1 - r["steps_s"] / r["wall_s"]
        cells = " | ".join(f"{r[c]:.1f}" for c in cols)
        print(f"| {r['checkpoint']} ({r['runs']} runs) | {cells} | {share:.0%} |")
    if rows:
        steps, wall = sum(r["steps_s"] for r in rows), sum(r["wall_s"] for r in rows)
        share = 1 - steps / wall
        print(
            f"all segments: {steps:.0f} s of training steps in {wall:.0f} s wall: {share:.0%} is not training"
        )


def arm_summary(home: Path, config_dir: Path) -> dict:
    """One arm's outcome: levels, the held-out accuracy of each mastered level on the newest checkpoint
    evaluated at it, the segment of each level-up, the last checkpoint's accuracy at every level it was
    scored on, and each skill's verdict."""
    from realm_pipeline import ledger
    from realm_pipeline.campaign import curriculum_state, latest_scores
    from realm_pipeline.settings import Settings

    settings = Settings(config_dir)
    prog = settings.realm.progression
    with ledger.connect(home / "realm.duckdb", read_only=True) as con:
        state = curriculum_state(con, settings, HERO)
        tokens = dict(
            con.execute("SELECT checkpoint_id, tokens FROM checkpoints WHERE hero = ?", [HERO]).fetchall()
        )
        newest: dict[tuple[str, int], tuple[int, float]] = {}
        for r in latest_scores(con, HERO):
            key = (r["skill"], int(r["level"]))
            if key not in newest or r["step"] > newest[key][0]:
                newest[key] = (int(r["step"]), float(r["accuracy"]))
    steps = settings.heroes[HERO].campaign.segment_steps
    last_step = max((step for step, _ in newest.values()), default=None)
    ups: dict[str, int] = {}
    for u in state.level_ups:
        ups[u.checkpoint_id] = ups.get(u.checkpoint_id, 0) + 1
    return {
        "levels": state.levels(),
        "held": {
            f"{s}@{lv}": round(newest[(s, lv)][1], 2)
            for s, sk in state.skills.items()
            for lv in sk.mastered
            if (s, lv) in newest
        },
        "level_ups": [f"{u.skill}@{u.mastered}:seg{u.step // steps}" for u in state.level_ups],
        "segments": len(state.timeline),
        # every level scored on the last evaluated checkpoint (the curriculum's mastered, current and next;
        # a uniform arm's every trained level)
        "last": {key: round(acc, 2) for key, (step, acc) in newest.items() if step == last_step},
        "verdicts": {}
        if state.verdicts is None
        else {n: v.verdict for n, v in state.verdicts.skills.items()},
        "old_rule": old_rule(
            state.timeline, ups, tokens, prog.maxed_out_window, prog.maintenance_multiplier_max
        ),
    }


def run_campaign(home: Path, config_dir: Path, segments: int, minutes: float | None = None) -> float:
    """`realm campaign` for the bench hero into `home`; its wall seconds. With `minutes`, the campaign is
    stopped (its process group killed) once that much wall time has passed: equal wall time for arms that
    train at different speeds; the ledger keeps every segment that finished, the one in flight is lost."""
    env = {
        **os.environ,
        "REALM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "REALM_CONFIG_DIR": str(config_dir),
    }
    realm = Path(sys.executable).with_name("realm")
    started = time.perf_counter()
    log = home / "campaign.log"
    home.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:  # streamed, so a long campaign can be watched with tail -f
        proc = subprocess.Popen(
            [str(realm), "campaign", "--hero", HERO, "--segments", str(segments)],
            env=env,
            text=True,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a time limit stops every process it started
        )
        try:
            returncode = proc.wait(timeout=None if minutes is None else minutes * 60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            print(
                f"stopped at the {minutes:g}-minute limit; reporting the segments that finished", flush=True
            )
            return time.perf_counter() - started
    if returncode != 0:
        print(log.read_text()[-4000:])
        raise SystemExit(f"realm campaign failed ({returncode}); log in {log}")
    return time.perf_counter() - started


def training_keys(args: argparse.Namespace) -> dict[str, float | int | bool]:
    """The hero's `training` keys the command line sets (realm's curriculum arms only)."""
    keys = {
        "preview_share": args.preview_share,
        "preview_levels": args.preview_levels,
        "mastered_share": args.mastered_share,
        "strain_hint": False if args.no_strain_hint else None,
    }
    return {k: v for k, v in keys.items() if v is not None}


def model_keys(spec: str | None) -> dict[str, int]:
    """`--model`'s key=value pairs (the hero's model config over tiny's), e.g. hidden_size=192."""
    pairs = [item.split("=", 1) for item in (spec or "").split(",") if item]
    bad = [p[0] for p in pairs if len(p) != 2 or not p[1].isdigit()]
    if bad:
        raise SystemExit(f"--model: each item is key=integer, got {', '.join(bad)}")
    return {key: int(value) for key, value in pairs}


def schedule_arms(args: argparse.Namespace, home: Path) -> None:
    """One campaign per LR schedule across segments, equal segments x steps and seeds; a table of them."""
    rows = []
    for schedule in args.schedules.split(","):
        arm = home / schedule
        config_dir = home / f"{schedule}-configs"
        if not args.report_only:
            for d in (arm, config_dir):
                if d.exists():
                    shutil.rmtree(d)
            write_configs(
                config_dir,
                args.skills.split(","),
                args.segments,
                schedule,
                args.segment_steps,
                training=training_keys(args),
            )
            wall = run_campaign(arm, config_dir, args.segments, args.minutes)
        else:
            wall = float("nan")
        rows.append((schedule, wall, arm_summary(arm, config_dir)))
        print(f"{schedule}: {rows[-1][2]} wall {wall:.0f} s", flush=True)
    print()
    print(
        "| schedule | segments | levels | held-out accuracy, mastered levels (last checkpoint) | level-ups | wall s |"
    )
    print("|---|---|---|---|---|---|")
    for schedule, wall, r in rows:
        levels = ", ".join(f"{s} L{lv}" for s, lv in r["levels"].items())
        held = " ".join(f"{k}={v:.2f}" for k, v in r["held"].items()) or "-"
        print(
            f"| {schedule} | {r['segments']} | {levels} | {held} | {' '.join(r['level_ups']) or '-'} | {wall:.0f} |"
        )
    print(f"\n{os.cpu_count()} cores; shared machine: wall times are noisy")


def curriculum_arms(args: argparse.Namespace, home: Path) -> None:
    """Per seed, equal segments x steps: (a) the curriculum before issue 18 (pooled replay, the old cap
    rule replayed on its history), (b) realm's curriculum, (c) none: one continuous run on a uniform mix of
    levels 1..K+1 of each skill, K the highest level (b) reached. A table of levels, the last checkpoint's
    held-out accuracy at levels 1..K+1, verdicts (realm's and the old rule's) and wall time."""
    rows = []
    skills = args.skills.split(",")
    arms = args.only.split(",")
    if "c" in arms and "b" not in arms and args.uniform_levels is None:
        raise SystemExit("--only without arm b: give arm c's levels with --uniform-levels (K+1 of arm b)")
    for seed in (int(x) for x in args.seeds.split(",")):
        top = args.uniform_levels
        for arm in arms:
            name = f"{arm}-seed{seed}"
            arm_home, config_dir = home / name, home / f"{name}-configs"
            if not args.report_only:
                for d in (arm_home, config_dir):
                    if d.exists():
                        shutil.rmtree(d)
                # (a) is pinned to what realm trained before issue 18, whatever tiny's defaults are now
                schedule = {"a": "restart", "b": args.schedule, "c": "continuous"}[arm]
                training = {"a": {"preview_share": 0.0}, "b": training_keys(args), "c": None}[arm]
                write_configs(
                    config_dir,
                    skills,
                    args.segments,
                    schedule,
                    args.segment_steps,
                    seed,
                    uniform_levels=top if arm == "c" else None,
                    curriculum="pooled" if arm == "a" else None,
                    training=training,
                )
                wall = run_campaign(arm_home, config_dir, args.segments, args.minutes)
            else:
                wall = float("nan")
            summary = arm_summary(arm_home, config_dir)
            if arm == "b" and args.uniform_levels is None:
                top = max(summary["levels"].values()) + 1
            rows.append((arm, seed, wall, top, summary))
            print(f"{name}: {summary} wall {wall:.0f} s", flush=True)
    print()
    print(
        "| arm | seed | levels | held-out accuracy, last checkpoint, levels 1..K+1 | verdicts | old rule | wall s |"
    )
    print("|---|---|---|---|---|---|---|")
    for arm, seed, wall, top, r in rows:
        levels = ", ".join(f"{s} L{lv}" for s, lv in r["levels"].items())
        last = " ".join(
            f"{s}@{lv}={acc:.2f}" for (s, lv), acc in sorted(r["last"].items()) if lv <= (top or 1)
        )
        verdicts = ", ".join(f"{s} {v}" for s, v in r["verdicts"].items())
        old = f"cap at segment {r['old_rule']}" if r["old_rule"] else "never fired"
        print(f"| {arm} | {seed} | {levels} | {last or '-'} | {verdicts} | {old} | {wall:.0f} |")
    print(f"\n{os.cpu_count()} cores")


def main() -> None:
    """Run the campaign (or one per --schedules arm), then report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=40)
    parser.add_argument("--skills", default="bin,seq_reverse,attn_count")
    parser.add_argument("--home", type=Path, default=None, help="REALM_HOME (default: a fresh temp dir)")
    parser.add_argument("--report-only", action="store_true", help="report on an existing --home")
    parser.add_argument(
        "--schedules", default=None, help="arms: comma-separated training.schedule values (restart,carry,...)"
    )
    parser.add_argument("--segment-steps", type=int, default=None, help="steps per segment (default: tiny's)")
    parser.add_argument(
        "--arms",
        action="store_true",
        help="arms b (realm's curriculum) and c (none: a uniform mix), per seed",
    )
    parser.add_argument("--seeds", default="1234,99", help="hero seeds for --arms")
    parser.add_argument("--only", default="a,b,c", help="which --arms to run (e.g. c: arm b ran before)")
    parser.add_argument(
        "--uniform-levels", type=int, default=None, help="arm c's levels 1..N (default: K+1 of arm b)"
    )
    parser.add_argument(
        "--schedule", default=None, help="training.schedule of arm b or the one campaign (default: tiny's)"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="stop each campaign after this much wall time (equal time)",
    )
    parser.add_argument(
        "--model", default=None, help="the hero's size over tiny's, e.g. hidden_size=192,num_hidden_layers=4"
    )
    parser.add_argument("--preview-share", type=float, default=None, help="training.preview_share (arm b)")
    parser.add_argument("--preview-levels", type=int, default=None, help="training.preview_levels (arm b)")
    parser.add_argument("--mastered-share", type=float, default=None, help="training.mastered_share (arm b)")
    parser.add_argument(
        "--no-strain-hint",
        action="store_true",
        help="training.strain_hint: false (arm b; the mix ignores it)",
    )
    args = parser.parse_args()
    home = (args.home or Path(tempfile.mkdtemp(prefix="realm-bench-campaign-"))).resolve()
    if args.schedules:
        schedule_arms(args, home)
        return
    if args.arms:
        curriculum_arms(args, home)
        return
    config_dir = home.parent / f"{home.name}-configs"
    if not args.report_only:
        if config_dir.exists():
            shutil.rmtree(config_dir)
        write_configs(
            config_dir,
            args.skills.split(","),
            max(args.segments, 1),
            args.schedule,
            segment_steps=args.segment_steps,
            training=training_keys(args),
            model=model_keys(args.model),
        )
    wall = 0.0 if args.report_only else run_campaign(home, config_dir, args.segments, args.minutes)
    report(home, config_dir, wall)
    print_breakdown(time_breakdown(home))


if __name__ == "__main__":
    main()
