"""Checkpoint retention: decide which hero checkpoints to keep, then (optionally) delete the rest on disk.

Planning is pure and separate from deletion so a plan can be logged/reviewed (dry run) before anything goes.
Work still needed is never planned for deletion: the parent of a segment that is queued or training, a
checkpoint whose eval is queued or running, the champion, each level-up's checkpoint (both are re-scored
when the protocol in force changes) and whatever the leaderboard references. "Best"
compares like with like: checkpoints are ranked per bench (skill@level), only against others measured on
that same bench.
"""

from __future__ import annotations

import math
import shutil
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


class RetentionError(RuntimeError):
    """A retention plan or its application would break an invariant (champion loss, path escape)."""


@dataclass(frozen=True)
class CheckpointInfo:
    """One saved checkpoint of a hero: higher-is-better accuracy per bench (`scores`), any may be unknown.

    `score` alone (no `scores`) is one score on a single unnamed bench.
    """

    checkpoint_id: str
    hero: str
    step: int
    score: float | None = None
    scores: Mapping[str, float | None] = field(default_factory=dict)

    def bench_scores(self) -> dict[str, float]:
        """{bench: score} of the finite scores only."""
        raw = dict(self.scores) if self.scores else {"": self.score}
        return {b: float(v) for b, v in raw.items() if v is not None and math.isfinite(v)}


@dataclass(frozen=True)
class RetentionPlan:
    """Checkpoint ids to keep and delete, with a reason for each, and each id's hero for locating it."""

    keep: list[str]
    delete: list[str]
    reasons: dict[str, str]
    hero_of: dict[str, str] = field(default_factory=dict)
    champion: str | None = None
    level_ups: frozenset[str] = frozenset()


def _parent_of(key: str, by_hero: Mapping[str, list[CheckpointInfo]]) -> tuple[str, int, str | None]:
    """(hero, step, parent id) of a checkpoint partition key `<hero>.<step>`: the newest earlier checkpoint."""
    hero, _, step_text = key.rpartition(".")
    if not hero or not step_text.isdigit():
        raise ValueError(f"in-flight training partition {key!r} is not '<hero>.<step>'")
    step = int(step_text)
    earlier = [i for i in by_hero.get(hero, []) if i.step < step]
    parent = max(earlier, key=lambda i: (i.step, i.checkpoint_id)).checkpoint_id if earlier else None
    return hero, step, parent


def plan_retention(
    checkpoints: Iterable[CheckpointInfo],
    *,
    keep_newest: int,
    keep_best: int,
    referenced: set[str],
    champion: str | None,
    training: Collection[str] = (),
    evaluating: Collection[str] = (),
    level_ups: Mapping[str, str] | None = None,
) -> RetentionPlan:
    """Per hero keep the newest `keep_newest` and, per bench, the best `keep_best`; plus referenced ones,
    the champion, each `level_ups` checkpoint ({checkpoint_id: the level it earned}), the parent (and any
    earlier copy) of each `training` partition key queued or running, and each checkpoint in `evaluating`
    (queued or running evals)."""
    if keep_newest < 0 or keep_best < 0:
        raise ValueError("keep_newest and keep_best must be >= 0")
    infos = list(checkpoints)
    by_id: dict[str, CheckpointInfo] = {}
    for info in infos:
        if info.checkpoint_id in by_id:
            # Ids name directories and lineage references; a duplicate makes both ambiguous.
            raise ValueError(f"duplicate checkpoint_id {info.checkpoint_id!r}")
        by_id[info.checkpoint_id] = info

    per_hero: dict[str, list[CheckpointInfo]] = defaultdict(list)
    for info in infos:
        per_hero[info.hero].append(info)

    why: dict[str, list[str]] = defaultdict(list)
    for hero, items in per_hero.items():
        # Ties broken by id so the plan is deterministic run to run.
        newest = sorted(items, key=lambda i: (-i.step, i.checkpoint_id))[:keep_newest]
        for rank, info in enumerate(newest, 1):
            why[info.checkpoint_id].append(f"newest #{rank} of {hero}")
        benches = sorted({b for i in items for b in i.bench_scores()})
        for bench in benches:
            # Like with like: only checkpoints measured on this bench compete for its best places.
            scored = [(i.bench_scores()[bench], i) for i in items if bench in i.bench_scores()]
            best = sorted(scored, key=lambda si: (-si[0], -si[1].step, si[1].checkpoint_id))[:keep_best]
            on = f" on {bench}" if bench else ""
            for rank, (value, info) in enumerate(best, 1):
                why[info.checkpoint_id].append(f"best #{rank} of {hero}{on} (score {value})")
    for cid in referenced:
        if cid in by_id:
            why[cid].append("referenced")
    for key in sorted(training):
        hero, step, parent = _parent_of(key, per_hero)
        if parent is not None:
            why[parent].append(f"parent of {key}, queued or training")
        if key in by_id:
            why[key].append("being trained again (queued or running)")
    for cid in sorted(evaluating):
        if cid in by_id:
            why[cid].append("eval queued or running")
    if champion is not None and champion in by_id:
        why[champion].append("champion")
    for cid, earned in sorted((level_ups or {}).items()):
        if cid in by_id:
            why[cid].append(f"level-up ({earned})")

    keep: list[str] = []
    delete: list[str] = []
    reasons: dict[str, str] = {}
    for info in sorted(infos, key=lambda i: (i.hero, i.step, i.checkpoint_id)):
        cid = info.checkpoint_id
        if why.get(cid):
            keep.append(cid)
            reasons[cid] = "keep: " + ", ".join(why[cid])
        else:
            delete.append(cid)
            reasons[cid] = (
                f"delete: not among the newest {keep_newest} or best {keep_best} (per bench) of {info.hero}, "
                "not referenced, not champion, not needed by a queued or running run"
            )
    if champion is not None and champion in delete:
        raise RetentionError(f"plan would delete the champion {champion!r}")  # defensive: must never happen
    if lost := sorted(set(level_ups or {}) & set(delete)):
        raise RetentionError(f"plan would delete level-up checkpoints {lost}")  # defensive, as above
    return RetentionPlan(
        keep=keep,
        delete=delete,
        reasons=reasons,
        hero_of={i.checkpoint_id: i.hero for i in infos},
        champion=champion,
        level_ups=frozenset(level_ups or {}),
    )


def _safe_name(name: str, what: str) -> None:
    # A single path component only: no separators, no "." / "..", nothing empty.
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise RetentionError(f"refusing unsafe {what} {name!r}")


def _checkpoint_dir(root: Path, hero: str, checkpoint_id: str) -> Path:
    _safe_name(hero, "hero name")
    _safe_name(checkpoint_id, "checkpoint id")
    root_resolved = root.resolve()
    target = root / hero / checkpoint_id
    if target.is_symlink():
        # rmtree on a symlink would either fail or (with older Pythons) follow it out of root.
        raise RetentionError(f"refusing to delete symlink {target}")
    resolved = target.resolve()
    if resolved.parent.parent != root_resolved or not resolved.is_relative_to(root_resolved):
        raise RetentionError(f"refusing to delete {target}: resolves to {resolved}, outside {root_resolved}")
    return target


def apply_retention(plan: RetentionPlan, root: Path, *, dry_run: bool) -> list[Path]:
    """Delete `root/<hero>/<checkpoint_id>` for each planned deletion (only when not dry_run); return them."""
    root = Path(root)
    if plan.champion is not None and plan.champion in plan.delete:
        raise RetentionError(f"plan deletes the champion {plan.champion!r}; refusing to apply it")
    if lost := sorted(plan.level_ups & set(plan.delete)):
        raise RetentionError(f"plan deletes level-up checkpoints {lost}; refusing to apply it")
    # Resolve and check every path before deleting anything, so a bad entry aborts the whole plan.
    targets: list[Path] = []
    for cid in plan.delete:
        hero = plan.hero_of.get(cid)
        if hero is None:
            raise RetentionError(f"plan has no hero for checkpoint {cid!r}")
        target = _checkpoint_dir(root, hero, cid)
        if not target.exists():
            continue  # already gone (e.g. a previous run was interrupted); nothing to delete
        if not target.is_dir():
            raise RetentionError(f"refusing to delete {target}: not a directory")
        targets.append(target)
    if not dry_run:
        for target in targets:
            shutil.rmtree(target)
    return targets
