"""The `realm` resource: which configs/ and which REALM_HOME a run uses."""

from functools import cached_property
from pathlib import Path

import dagster as dg

from realm_pipeline.settings import Settings


class RealmResource(dg.ConfigurableResource):
    """Validated configs and the state directory of one campaign."""

    config_dir: str = ""  # empty: find_config_dir() ($REALM_CONFIG_DIR, ./configs, the shipped defaults)
    home: str

    @cached_property
    def settings(self) -> Settings:
        """Every config file, validated."""
        return Settings(self.config_dir or None)

    @property
    def home_path(self) -> Path:
        """$REALM_HOME."""
        return Path(self.home)

    def checkpoint_dir(self, hero: str, checkpoint_id: str) -> Path:
        """Where one checkpoint's save_pretrained output lives."""
        return self.home_path / "checkpoints" / hero / checkpoint_id
