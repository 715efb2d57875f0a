"""The thin Dagster layer, one folder per domain; realm_pipeline.definitions loads it all."""
