"""The public mirror: leak-proof JSON + a static page built only from declared-public ledger columns."""

from realm_pipeline.mirror.export import EmptyMirror, build_mirror, read_public, write_mirror
from realm_pipeline.mirror.leakcheck import Finding, private_values, scan

__all__ = ["EmptyMirror", "Finding", "build_mirror", "private_values", "read_public", "scan", "write_mirror"]
