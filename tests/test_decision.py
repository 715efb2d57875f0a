"""campaign.decide_next: what a hero needs next, over a table of situations (pure: no Dagster, no ledger)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from realm_pipeline.campaign import (
    CANCELED,
    FAILED,
    IN_FLIGHT,
    SUCCEEDED,
    HeroFacts,
    RunOutcome,
    decide_next,
)

SKILLS = ("bin", "sy")
BOTH_EVALUATED = frozenset({("tiny.000150", "bin"), ("tiny.000150", "sy")})

# A hero with one checkpoint, fully evaluated and rolled up: it needs its second segment.
READY = HeroFacts(
    hero="tiny",
    skills=SKILLS,
    checkpoints=("tiny.000150",),
    next_checkpoint="tiny.000300",
    paused=False,
    segment_budget=8,
    maxed_out_reason=None,
    eval_sets_done=frozenset(SKILLS),
    evaluated=BOTH_EVALUATED,
    last_eval_at=100.0,
    last_rollup_at=200.0,
)


def run(job: str, partition: str | None, status: str, **kw) -> RunOutcome:
    return RunOutcome(
        job=job, partition=partition, run_id=f"{job}-{partition}-{status}-0123456789", status=status, **kw
    )


def keys(facts: HeroFacts) -> list[str]:
    return [s.run_key for s in decide_next(facts).steps]


# (situation, facts, the run keys requested, the stop reason's start or None)
TABLE = [
    (
        "a new hero builds its eval sets first",
        replace(
            READY,
            checkpoints=(),
            next_checkpoint="tiny.000150",
            eval_sets_done=frozenset(),
            evaluated=frozenset(),
            last_eval_at=None,
            last_rollup_at=None,
        ),
        ["eval_sets:bin", "eval_sets:sy"],
        None,
    ),
    (
        "one eval set missing: build it, train nothing",
        replace(READY, eval_sets_done=frozenset({"bin"})),
        ["eval_sets:sy"],
        None,
    ),
    (
        "eval sets built, no checkpoint: the first segment",
        replace(
            READY,
            checkpoints=(),
            next_checkpoint="tiny.000150",
            evaluated=frozenset(),
            last_eval_at=None,
            last_rollup_at=None,
        ),
        ["tiny.000150"],
        None,
    ),
    (
        "a new checkpoint gets the evals it lacks",
        replace(READY, evaluated=frozenset({("tiny.000150", "bin")})),
        ["eval:tiny.000150|sy"],
        None,
    ),
    (
        "fully evaluated since the last rollup: rollup and the next segment",
        replace(READY, last_rollup_at=50.0),
        ["rollup:tiny.000150", "tiny.000300"],
        None,
    ),
    (
        "a confirming eval re-scored the rolled-up checkpoint: a rollup under a key naming the verdict",
        replace(READY, last_eval_at=300.0, confirmations=("bin@1:v2",)),
        ["rollup:tiny.000150+confirm:bin@1:v2", "tiny.000300"],
        None,
    ),
    ("never rolled up", replace(READY, last_rollup_at=None), ["rollup:tiny.000150", "tiny.000300"], None),
    ("rolled up: the next segment", READY, ["tiny.000300"], None),
    ("paused", replace(READY, paused=True), [], "paused"),
    (
        "paused still rolls up its newest evals",
        replace(READY, paused=True, last_rollup_at=50.0),
        ["rollup:tiny.000150"],
        "paused",
    ),
    ("at its budget", replace(READY, segment_budget=1), [], "at its segment budget (1 segments)"),
    ("maxed out", replace(READY, maxed_out_reason="2 levels in 6 segments"), [], "maxed out: 2 levels"),
    (
        "the next segment in flight: wait, request nothing",
        replace(READY, runs=(run("train_job", "tiny.000300", IN_FLIGHT),)),
        [],
        None,
    ),
    (
        "an earlier run of the step succeeded: request it (its run key dedups)",
        replace(READY, runs=(run("train_job", "tiny.000300", SUCCEEDED, ended_at=150.0),)),
        ["tiny.000300"],
        None,
    ),
    (
        "the next segment failed: stop, naming it, and roll up once so the hero's status says so",
        replace(
            READY,
            runs=(
                run("train_job", "tiny.000300", FAILED, attempts=3, error="OSError: disk", ended_at=300.0),
            ),
        ),
        ["rollup:failed:train_job-tiny.000300-failed-0123456789"],
        "train_job tiny.000300 failed in run train_jo after 3 attempts: OSError: disk",
    ),
    (
        "failed, and rolled up since: only the stop reason",
        replace(READY, last_rollup_at=400.0, runs=(run("train_job", "tiny.000300", FAILED, ended_at=300.0),)),
        [],
        "train_job tiny.000300 failed",
    ),
    (
        "canceled: also waits for a person",
        replace(
            READY, last_rollup_at=400.0, runs=(run("train_job", "tiny.000300", CANCELED, ended_at=300.0),)
        ),
        [],
        "train_job tiny.000300 canceled",
    ),
    (
        "a failed eval stops the hero too",
        replace(
            READY,
            last_rollup_at=400.0,
            evaluated=frozenset({("tiny.000150", "bin")}),
            runs=(run("eval_job", "tiny.000150|sy", FAILED, ended_at=300.0),),
        ),
        [],
        "eval_job tiny.000150|sy failed",
    ),
    (
        "acknowledged: the step again, under a new run key",
        replace(READY, runs=(run("train_job", "tiny.000300", FAILED, acknowledged=True, ended_at=300.0),)),
        ["tiny.000300#retry-after-train_jo"],
        None,
    ),
    (
        "a rollup in flight is waited on, the segment goes ahead",
        replace(READY, last_rollup_at=50.0, runs=(run("rollup_job", None, IN_FLIGHT),)),
        ["tiny.000300"],
        None,
    ),
]


@pytest.mark.parametrize(("facts", "requested", "stop"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])
def test_decide_next(facts: HeroFacts, requested: list[str], stop: str | None) -> None:
    decision = decide_next(facts)
    assert [s.run_key for s in decision.steps] == requested
    if stop is None:
        assert decision.stop is None and not decision.failed
    else:
        assert decision.stop is not None and decision.stop.startswith(stop), decision.stop
        assert decision.status.startswith("stopped: ")


def test_a_failure_tells_the_person_how_to_retry_and_the_status_names_the_run() -> None:
    failed = run("train_job", "tiny.000300", FAILED, attempts=3, error="OSError: disk", ended_at=300.0)
    decision = decide_next(replace(READY, runs=(failed,)))
    assert decision.failed == (failed,)
    assert "realm retry tiny" in decision.status and failed.run_id[:8] in decision.status
    assert "tiny.000300" in decision.status


def test_waiting_and_next_steps_read_in_the_status() -> None:
    waiting = decide_next(replace(READY, runs=(run("train_job", "tiny.000300", IN_FLIGHT),)))
    assert waiting.status == "waiting on train_job tiny.000300 (run train_jo)"
    assert decide_next(READY).status == "next train_job tiny.000300"


def test_evals_of_a_new_checkpoint_and_rollups_are_the_automations_and_nothing_else() -> None:
    def automated(facts: HeroFacts) -> dict[str, bool]:
        return {s.run_key: s.automated for s in decide_next(facts).steps}

    assert automated(replace(READY, evaluated=frozenset({("tiny.000150", "bin")}))) == {
        "eval:tiny.000150|sy": True
    }
    assert automated(replace(READY, last_rollup_at=50.0)) == {
        "rollup:tiny.000150": True,
        "tiny.000300": False,
    }
    assert decide_next(replace(READY, last_rollup_at=50.0)).status == (
        "next rollup_job (automation), train_job tiny.000300"
    )
    # what no automation condition asks for stays the campaign sensor's: eval sets, a person's retry,
    # the curriculum run that records a failure
    assert automated(replace(READY, eval_sets_done=frozenset({"bin"}))) == {"eval_sets:sy": False}
    retried = run("eval_job", "tiny.000150|sy", FAILED, acknowledged=True, ended_at=300.0)
    assert automated(replace(READY, evaluated=frozenset({("tiny.000150", "bin")}), runs=(retried,))) == {
        "eval:tiny.000150|sy#retry-after-eval_job": False
    }
    failed = run("train_job", "tiny.000300", FAILED, ended_at=300.0)
    assert list(automated(replace(READY, runs=(failed,))).values()) == [False]


SHORT = (
    "checkpoint tiny.000300: not enough free space to write /h/checkpoints/tiny/tiny.000300: needs 9 bytes"
)
DISK_FULL = "DiskFull: disk full (ENOSPC) writing /h/checkpoints/tiny/tiny.000300/.resume.tmp (0 bytes free)"


def test_a_segment_the_disk_cannot_hold_is_waited_for_not_requested() -> None:
    decision = decide_next(replace(READY, disk_short=SHORT))
    assert decision.steps == () and decision.failed == ()
    assert decision.short_of_space == SHORT
    assert decision.status == f"stopped: waiting for free space: {SHORT}"


def test_a_run_that_failed_for_a_full_disk_is_retried_by_itself_once_space_is_back() -> None:
    failed = run("train_job", "tiny.000300", FAILED, error=DISK_FULL)
    assert failed.disk_full
    still_full = decide_next(replace(READY, runs=(failed,), disk_short=SHORT))
    assert still_full.steps == () and still_full.failed == () and still_full.short_of_space == SHORT
    freed = decide_next(replace(READY, runs=(failed,)))
    assert [s.run_key for s in freed.steps] == [f"tiny.000300#after-disk-full-{failed.run_id[:8]}"]
    assert freed.stop is None and freed.failed == ()
    # any other failure still waits for a person
    other = run("train_job", "tiny.000300", FAILED, error="ValueError: bad spec")
    assert not other.disk_full
    assert decide_next(replace(READY, runs=(other,))).failed == (other,)
