"""The mirror's leak check (pure): every private ledger value, and a fast bytes scan of staged files for them.

What counts as a private value, and why:

* Every distinct non-null value of every column declared private, cast to text, and each private table's
  name. Values shorter than MIN_LENGTH characters and pure numbers / booleans are skipped: "12", "true"
  or "0.5" occur in any JSON document, so they would only produce false alarms.
* Join keys are not secrets: a private column whose name is also a public column elsewhere (e.g.
  eval_generations.checkpoint_id vs checkpoints.checkpoint_id) is only flagged for values that do NOT
  also appear in such a public column. A prompt copied into a public column is still flagged, because
  no public column is named `prompt`.
* `schema_version` is exempt as a table name: it is the mirror documents' own version key.
* Each value is searched both raw and JSON-escaped (quotes, backslashes, control characters), as it
  would appear inside a JSON string.

Scan: all values are at least MIN_LENGTH bytes, so every occurrence starts with one of their 6-byte
prefixes. With numpy, each file's 6-byte windows are packed into uint64 and matched against the sorted
prefixes in one vectorised `isin`; only the few hits are verified with `startswith`. Without numpy it
falls back to one `in` per value.
"""

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb

from realm_pipeline.ledger import PRIVATE_TABLES, TABLES

MIN_LENGTH = 6
_ANCHOR = 6  # bytes per prefix window; MIN_LENGTH characters are at least this many UTF-8 bytes
_NUMBER_OR_BOOL = re.compile(
    r"^\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|true|false|nan|[-+]?inf(inity)?)\s*$", re.I
)
_EXEMPT_TABLE_NAMES = frozenset({"schema_version"})
_CHUNK = 1 << 22  # windows per numpy batch: bounds scratch memory to ~30x this in bytes


@dataclass(frozen=True)
class Finding:
    """One private value found in one published file."""

    file: str
    value: str


def is_trivial(value: str) -> bool:
    """True for values too short or too generic to be checked (see module docstring)."""
    return len(value) < MIN_LENGTH or bool(_NUMBER_OR_BOOL.match(value))


def private_values(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every non-trivial value of every private column, plus the private tables' names."""
    public_by_name: dict[str, list[str]] = defaultdict(list)
    for t in TABLES.values():
        for c in t.public_columns:
            public_by_name[c].append(t.name)
    values = {name for name in PRIVATE_TABLES if name not in _EXEMPT_TABLE_NAMES}
    for t in TABLES.values():
        for col in t.private_columns:
            sql = f'SELECT DISTINCT CAST("{col}" AS VARCHAR) AS v FROM {t.name} WHERE "{col}" IS NOT NULL'
            for other in public_by_name.get(col, ()):
                sql += f' EXCEPT SELECT CAST("{col}" AS VARCHAR) FROM {other} WHERE "{col}" IS NOT NULL'
            values.update(v for (v,) in con.execute(sql).fetchall() if not is_trivial(v))
    return values


def _needles(values: set[str]) -> dict[bytes, str]:
    """Byte patterns to search, each mapped back to the value it stands for (raw and JSON-escaped)."""
    out: dict[bytes, str] = {}
    for v in values:
        out[v.encode()] = v
        for ascii_only in (False, True):
            escaped = json.dumps(v, ensure_ascii=ascii_only)[1:-1]
            out.setdefault(escaped.encode(), v)
        out.setdefault(v.replace("<", "\\u003c").encode(), v)  # as inlined into index.html
    return out


class _Matcher:
    """Needles grouped by their first _ANCHOR bytes, built once and reused for every file."""

    def __init__(self, values: set[str]) -> None:
        self.by_prefix: dict[int, list[tuple[bytes, str]]] = defaultdict(list)
        self.short: list[tuple[bytes, str]] = []
        for needle, v in _needles(values).items():
            if len(needle) >= _ANCHOR:
                self.by_prefix[int.from_bytes(needle[:_ANCHOR], "little")].append((needle, v))
            else:
                self.short.append((needle, v))
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - numpy ships with the training stack
            np = None
        self.np = np
        if np is not None:
            self.keys = np.fromiter(self.by_prefix, dtype=np.uint64, count=len(self.by_prefix))
            self.keys.sort()

    def hits(self, data: bytes) -> set[str]:
        """The values occurring anywhere in `data`."""
        found = {v for needle, v in self.short if needle in data}
        if self.np is None:
            return found | {v for group in self.by_prefix.values() for n, v in group if n in data}
        if not self.by_prefix:
            return found
        np, keys, n = self.np, self.keys, len(data)
        for start in range(0, max(n - _ANCHOR + 1, 0), _CHUNK):
            stop = min(start + _CHUNK, n - _ANCHOR + 1)
            count = stop - start
            buf = np.frombuffer(data, dtype=np.uint8, count=count + _ANCHOR - 1, offset=start).astype(
                np.uint64
            )
            windows = buf[:count].copy()
            for j in range(1, _ANCHOR):
                windows |= buf[j : j + count] << np.uint64(8 * j)
            idx = np.searchsorted(keys, windows)
            idx[idx == len(keys)] = 0
            for pos in np.nonzero(keys[idx] == windows)[0]:
                p = start + int(pos)
                for needle, value in self.by_prefix[int(windows[pos])]:
                    if value not in found and data.startswith(needle, p):
                        found.add(value)
        return found


def scan_bytes(data: bytes, values: set[str]) -> set[str]:
    """The values (raw or JSON-escaped) occurring anywhere in `data`."""
    return _Matcher(values).hits(data)


def scan_naive(directory: Path | str, values: set[str]) -> list[Finding]:
    """The baseline: one substring search per value per file (what `scan` is benched against)."""
    root, needles = Path(directory), _needles(values)
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = {v for n, v in needles.items() if n in data}
        found += [Finding(str(path.relative_to(root)), v) for v in sorted(hits)]
    return found


def scan(directory: Path | str, values: set[str]) -> list[Finding]:
    """Every (file, private value) occurrence in every file under `directory`."""
    root = Path(directory)
    matcher = _Matcher(values)
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        hits = matcher.hits(path.read_bytes())
        found += [Finding(str(path.relative_to(root)), v) for v in sorted(hits)]
    return found
