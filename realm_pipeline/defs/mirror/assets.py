"""`public_mirror`: the leak-checked public JSON + static page, published atomically under $REALM_HOME/mirror."""

import json
from pathlib import Path

import dagster as dg

from realm_pipeline.defs.automation import rollup_condition
from realm_pipeline.defs.owners import REALM_OWNERS
from realm_pipeline.defs.resources import LedgerResource, RealmResource
from realm_pipeline.disk import DiskFull
from realm_pipeline.mirror.export import build_mirror, leaderboard_row_count, write_mirror
from realm_pipeline.mirror.leakcheck import Finding, private_values, scan

CHECK_NAME = "no_private_values"


class PublicMirrorConfig(dg.Config):
    """Run config of `public_mirror`."""

    allow_empty: bool = False
    mirror_dir: str | None = None  # default: $REALM_HOME/mirror


class LeakFound(RuntimeError):
    """The staged mirror holds private values; nothing was published."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__(f"{len(findings)} private value(s) in the staged mirror")
        self.findings = findings


def _redact(value: str) -> str:
    # The event log is internal, but a finding is still no reason to copy a secret into another store.
    return f"{value[:3]}… ({len(value)} chars)"


@dg.asset(
    group_name="campaign",
    owners=REALM_OWNERS,
    kinds={"duckdb", "html"},
    # One exporter at a time, by Dagster's pool (limit 1 from dagster.yaml), not a lock of our own:
    # write_mirror may then treat any staging dir it finds as a crashed export's litter.
    pool="mirror",
    deps=["leaderboard", "curriculum", "eval_scores", "checkpoints"],
    # the board and the hero sheets are what change it; eval scores reach it through them
    automation_condition=rollup_condition("leaderboard", "curriculum"),
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset="public_mirror",
            blocking=True,
            description="The staged mirror contains no private ledger value and no private table name.",
        )
    ],
)
def public_mirror(config: PublicMirrorConfig, realm: RealmResource, ledger_db: LedgerResource):
    """Export declared-public columns to JSON + index.html; leak-scan the staged copy, then swap it in."""
    target = Path(config.mirror_dir) if config.mirror_dir else realm.home_path / "mirror"
    with ledger_db.read() as con:
        files = build_mirror(con)
        secrets = private_values(con)

    def check(staged: Path) -> None:
        findings = scan(staged, secrets)
        if findings:
            raise LeakFound(findings)

    try:
        version = write_mirror(files, target, allow_empty=config.allow_empty, check=check)
    except DiskFull as exc:  # refused before writing, or ENOSPC: nothing half-written, the old mirror stays
        raise dg.Failure(str(exc), allow_retries=False) from exc
    except LeakFound as exc:
        yield dg.AssetCheckResult(
            check_name=CHECK_NAME,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "findings": len(exc.findings),
                "files": dg.MetadataValue.json(sorted({f.file for f in exc.findings})),
                "examples": dg.MetadataValue.json(
                    [f"{f.file}: {_redact(f.value)}" for f in exc.findings[:20]]
                ),
                "values_checked": len(secrets),
            },
        )
        raise dg.Failure(
            description=f"public mirror NOT published: {exc}; the previous mirror at {target} is unchanged",
        ) from exc
    heroes = len(json.loads(files["heroes.json"])["heroes"])
    yield dg.MaterializeResult(
        metadata={
            "rows": leaderboard_row_count(files),
            "heroes": heroes,
            "files": len(files),
            "bytes": sum(len(b) for b in files.values()),
            "path": dg.MetadataValue.path(str(target)),
            "version": version.name,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK_NAME,
                passed=True,
                metadata={"values_checked": len(secrets), "files": len(files)},
            )
        ],
    )
