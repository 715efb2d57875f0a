"""Partition definitions shared by assets, jobs and sensors."""

from __future__ import annotations

import dagster as dg

from realm_pipeline.settings import Settings

skill_partitions = dg.StaticPartitionsDefinition(sorted(Settings().skills))
