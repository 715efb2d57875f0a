"""`quests`: registers validated inbox files (quest + example rows) in the ledger, one transaction a file."""

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from realm_pipeline import quests as q
from realm_pipeline.defs.owners import REALM_OWNERS
from realm_pipeline.defs.resources import LedgerResource, RealmResource

# External: people drop quest files into $REALM_HOME/inbox/; quest_inbox_sensor asks for a run per file.
quest_inbox = dg.AssetSpec(
    "quest_inbox",
    group_name="campaign",
    owners=REALM_OWNERS,
    kinds={"file"},
    description="Quest files (*.jsonl) people drop into $REALM_HOME/inbox/; registered by `quests`.",
)


class QuestsConfig(dg.Config):
    """Run config of `quests`: the inbox files to register (none named: every entry in the inbox)."""

    files: list[str] = []


# A failed write (a busy ledger) is retried; a file the run cannot read is filed under rejected/ instead,
# so no inbox entry can fail run after run.
@dg.asset(
    group_name="campaign",
    owners=REALM_OWNERS,
    kinds={"duckdb"},
    deps=[quest_inbox],
    retry_policy=dg.RetryPolicy(max_retries=2, delay=2),
)
def quests(config: QuestsConfig, realm: RealmResource, ledger_db: LedgerResource) -> dg.MaterializeResult:
    """Validates each file, registers it whole or not at all, then moves it to inbox/accepted/ or rejected/.

    Every move happens here, not in the inbox sensor, so that evaluating the sensor changes nothing.
    """
    home = realm.home_path
    registered, skipped, rejected = [], [], []
    eval_prompts = q.eval_prompt_index(realm.settings)
    for name in config.files or [str(p) for p in q.inbox_entries(home)]:
        path = Path(name)
        if not os.path.lexists(path):
            skipped.append(f"{name}: gone (already moved)")
            continue
        with ledger_db.get_connection() as con:
            known = q.registered_sha256s(con)
            try:
                # Re-validate: the file may have changed since the sensor looked at it.
                quest = q.validate_quest_file(path, registered_sha256s=known, eval_prompts=eval_prompts)
            except OSError as exc:  # unreadable: a report says so, rather than a run failing on it for ever
                exc = q.QuestRejected(f"unreadable: {exc.strerror}", rule="unreadable")
                rejected.append(f"{name}: {exc}")
                q.reject(path, home, exc)
                continue
            except q.QuestRejected as exc:
                # a bad file, or a copy of a registered one: kept under rejected/ with the reason beside it
                rejected.append(f"{name}: {exc}")
                q.reject(path, home, exc)
                continue
            new = q.register_quest(con, quest, str(path), datetime.now(UTC).replace(tzinfo=None))
        # Move only after the commit: a failed transaction leaves the file in the inbox for a retry.
        if new:
            q.accept(path, home)
            registered.append({"quest_id": quest.quest_id, "file": path.name, "n_examples": quest.n})
        else:  # registered by a concurrent run between the check and the insert
            duplicate = q.QuestRejected(
                f"duplicate: a quest with sha256 {quest.sha256} is already registered"
            )
            rejected.append(f"{name}: {duplicate}")
            q.reject(path, home, duplicate)
    return dg.MaterializeResult(
        metadata={
            "registered": dg.MetadataValue.json(registered),
            "n_examples": sum(r["n_examples"] for r in registered),
            "skipped": dg.MetadataValue.json(skipped),
            "rejected": dg.MetadataValue.json(rejected),
        }
    )


quests_job = dg.define_asset_job(
    "quests_job",
    selection=[quests],
    description="Register the quest files of the inbox given in its run config.",
)
