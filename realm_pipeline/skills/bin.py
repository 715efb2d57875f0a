"""BIN: binary arithmetic in circled notation (⓪ = 0, ① = 1), 30 levels.

Conventions (the model sees them only through examples, so they never vary):
- Operands are written at the level's fixed width (zero-padded) so the prompt shows the bit width.
- Unsigned results are written WITHOUT leading zeros (zero is a single ⓪).
- Signed values ("sN" marker) are N-bit two's complement patterns, always exactly N digits.
- Plain items answer with the result alone. Items carrying difficulty signals answer with lines:
  trace lines ("b<i>: ..."), then the work line ("carry:"/"borrow:"/"pp:"), then "= <result>",
  then, with [verify], a final "check: ..." line. The scorer checks every part the signals require.
- Each prompt opens with one of PHRASES. The phrasing never changes the answer, so low levels, whose
  operand space is tiny (16 pairs at L1), still have a few hundred distinct prompts: the eval set holds
  out prompts, and the hero must answer a held-out prompt from facts it saw under other phrasings.
- From level 8 most items use a random symbol mapping ("map ⓪=▲ ①=●"): every binary digit in the
  body and the answer is written in those symbols; decimal numbers stay decimal.
"""

from __future__ import annotations

import re

from realm_pipeline.skills.base import Score, SkillItem
from realm_pipeline.skills.drills import check_index, check_level, make_rng

ZERO, ONE = "⓪", "①"
# Fixed symbol set for mappings: non-ASCII, none used elsewhere in any prompt.
SYMBOLS = "▲▼●■◆★♠♣"
# (op, first level it appears)
OP_LEVELS: tuple[tuple[str, int], ...] = (
    ("add", 1),
    ("sub", 4),
    ("cmp", 6),
    ("convert", 8),
    ("signed", 10),
    ("mul", 15),
    ("chain", 22),
)
SIGNAL_LEVELS: tuple[tuple[str, int], ...] = (("verify", 12), ("show-work", 16), ("trace", 20))
# Which concrete operations each signal can be asked of.
SIGNAL_OPS = {
    "verify": {"add", "sub", "mul", "sadd", "ssub"},
    "show-work": {"add", "sub", "mul"},
    "trace": {"add", "sub"},
}
# Interchangeable openings; the header's signals and mapping follow the phrase.
PHRASES = ("bin", "binary", "calc", "solve", "compute", "eval", "work out", "bin calc", "what is", "sum up")
MAP_FROM_LEVEL = 8
MAP_PROB = 0.7
SIGNAL_PROB = 0.4

_TRACE_RE = re.compile(r"^b\d+:")
# phrase, signal headers, optional mapping, then the body: the inverse of generate()'s header
_PROMPT_RE = re.compile(
    r"^(?P<phrase>[^:\[]+?)(?P<signals>(?: \[[a-z-]+\])*)(?: map ⓪=(?P<s0>.) ①=(?P<s1>.))?: (?P<body>.*)$",
    re.S,
)
# The reference's primitive each concrete operation exercises (multi-step arithmetic is logic_chain).
OP_PRIMITIVE = {
    "add": "logic_chain",
    "sub": "logic_chain",
    "mul": "logic_chain",
    "chain": "logic_chain",
    "sadd": "logic_chain",
    "ssub": "logic_chain",
    "cmp": "attn_compare",
    "to_dec": "xfm_decode",
    "sto_dec": "xfm_decode",
    "to_bin": "xfm_encode",
    "sto_bin": "xfm_encode",
}


def bin_width(level: int) -> int:
    """Bit width at a level: 2 at L1 rising monotonically to 32 at L30."""
    check_level("bin", level, BinSkill.max_level)
    return round(2 + (level - 1) * 30 / 29)


def bin_ops(level: int) -> tuple[str, ...]:
    """Operation families available at a level."""
    check_level("bin", level, BinSkill.max_level)
    return tuple(op for op, first in OP_LEVELS if level >= first)


def bin_signals(level: int) -> tuple[str, ...]:
    """Difficulty signals that may appear at a level."""
    check_level("bin", level, BinSkill.max_level)
    return tuple(sig for sig, first in SIGNAL_LEVELS if level >= first)


def to_bits(value: int, width: int | None = None) -> str:
    """Circled binary: minimal form (no leading zeros) or zero-padded to `width`."""
    raw = format(value, "b") if width is None else format(value, f"0{width}b")
    return raw.replace("0", ZERO).replace("1", ONE)


def to_twos(value: int, width: int) -> str:
    """Circled `width`-bit two's complement pattern of a signed value."""
    return to_bits(value % (1 << width), width)


def _bit(value: int, i: int) -> str:
    return ONE if (value >> i) & 1 else ZERO


def _add_steps(a: int, b: int, n: int) -> tuple[list[str], str]:
    """Per-bit trace lines and the carry-out string (MSB first) of an n-bit addition."""
    lines, carries, c = [], [], 0
    for i in range(n):
        ai, bi = (a >> i) & 1, (b >> i) & 1
        total = ai + bi + c
        lines.append(
            f"b{i}: {_bit(ai, 0)}+{_bit(bi, 0)}+{_bit(c, 0)}={_bit(total & 1, 0)} c{_bit(total >> 1, 0)}"
        )
        c = total >> 1
        carries.append(_bit(c, 0))
    return lines, "".join(reversed(carries))


def _sub_steps(a: int, b: int, n: int) -> tuple[list[str], str]:
    """Per-bit trace lines and the borrow-out string (MSB first) of an n-bit subtraction a - b."""
    lines, borrows, w = [], [], 0
    for i in range(n):
        ai, bi = (a >> i) & 1, (b >> i) & 1
        d = ai - bi - w
        w_out = 1 if d < 0 else 0
        lines.append(f"b{i}: {_bit(ai, 0)}-{_bit(bi, 0)}-{_bit(w, 0)}={_bit(d & 1, 0)} w{_bit(w_out, 0)}")
        borrows.append(_bit(w_out, 0))
        w = w_out
    return lines, "".join(reversed(borrows))


def _parts(text: str) -> dict[str, str]:
    """Split an answer into its scored parts: final, and where present trace, work, check."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    parts: dict[str, str] = {}
    trace = [ln for ln in lines if _TRACE_RE.match(ln)]
    if trace:
        parts["trace"] = "\n".join(trace)
    for pos, ln in enumerate(lines):
        if ln.startswith(("carry:", "borrow:", "pp:")):
            parts["work"] = ln
        if ln.startswith("check:"):
            # [verify] demands the check line come last; a misplaced one does not count.
            parts["check"] = ln if pos == len(lines) - 1 else "misplaced " + ln
    finals = [ln[2:].strip() for ln in lines if ln.startswith("= ")]
    parts["final"] = finals[-1] if finals else (lines[-1] if lines else "")
    return parts


class BinSkill:
    """Binary arithmetic in circled notation; see the module docstring for conventions."""

    name = "bin"
    version = "2"
    max_level = 30

    def generate(self, level: int, seed: int, index: int) -> SkillItem:
        """Build one item: pick an op family, draw operands, render prompt and reference answer."""
        n = bin_width(level)
        check_index(self.name, seed, index)
        rng = make_rng(self.name, level, seed, index)
        family = rng.choice(bin_ops(level))
        hi = 1 << n
        signed_prefix = ""
        work: str | None = None
        trace: list[str] = []
        check = ""
        if family == "add":
            op, a, b = "add", rng.randrange(hi), rng.randrange(hi)
            body, result = f"{to_bits(a, n)}+{to_bits(b, n)}=", to_bits(a + b)
            trace, carries = _add_steps(a, b, n)
            work, check = f"carry: {carries}", f"check: {result}-{to_bits(b, n)}={to_bits(a, n)}"
        elif family == "sub":
            a, b = sorted((rng.randrange(hi), rng.randrange(hi)), reverse=True)
            op, body, result = "sub", f"{to_bits(a, n)}-{to_bits(b, n)}=", to_bits(a - b)
            trace, borrows = _sub_steps(a, b, n)
            work, check = f"borrow: {borrows}", f"check: {result}+{to_bits(b, n)}={to_bits(a, n)}"
        elif family == "cmp":
            op, a, b = "cmp", rng.randrange(hi), rng.randrange(hi)
            body, result = f"{to_bits(a, n)}?{to_bits(b, n)}", "<" if a < b else ">" if a > b else "="
        elif family == "convert":
            a = rng.randrange(hi)
            if rng.random() < 0.5:
                op, body, result = "to_dec", f"{to_bits(a, n)}→dec", str(a)
            else:
                op, body, result = "to_bin", f"{a}→bin", to_bits(a)
        elif family == "signed":
            op, body, result, check = self._signed(rng, n)
            signed_prefix = f"s{n} "
        elif family == "mul":
            m = max(2, n // 2)
            op, a, b = "mul", rng.randrange(1 << m), rng.randrange(1 << m)
            body, result = f"{to_bits(a, m)}×{to_bits(b, m)}=", to_bits(a * b)
            pps = [to_bits(a << i) for i in range(m) if (b >> i) & 1] or [ZERO]
            work, check = "pp: " + " ".join(pps), f"check: {to_bits(b, m)}×{to_bits(a, m)}={result}"
        else:  # chain: 2-3 of + / -, left to right, operands at half width, never negative
            op, body, result = "chain", *self._chain(rng, n)
        signals = [s for s in bin_signals(level) if op in SIGNAL_OPS[s] and rng.random() < SIGNAL_PROB]
        if signals:
            lines = list(trace) if "trace" in signals else []
            if "show-work" in signals and work:
                lines.append(work)
            lines.append(f"= {result}")
            if "verify" in signals:
                lines.append(check)
            answer = "\n".join(lines)
        else:
            answer = result
        body = signed_prefix + body
        header = rng.choice(PHRASES) + "".join(f" [{s}]" for s in signals)
        if level >= MAP_FROM_LEVEL and rng.random() < MAP_PROB:
            s0, s1 = rng.sample(SYMBOLS, 2)
            table = str.maketrans({ZERO: s0, ONE: s1})
            body, answer = body.translate(table), answer.translate(table)
            header += f" map {ZERO}={s0} {ONE}={s1}"
        tags = {"primitive": OP_PRIMITIVE[op], "operation": op, "signal": "+".join(signals) or "none"}
        return SkillItem(self.name, level, seed, index, f"{header}: {body}", answer, tags=tags)

    @staticmethod
    def _signed(rng, n: int) -> tuple[str, str, str, str]:
        """Signed two's complement add/sub/convert with no overflow: (op, body, result, check line)."""
        lo, hi = -(1 << (n - 1)), (1 << (n - 1)) - 1
        kind = rng.choice(("sadd", "ssub", "sto_dec", "sto_bin"))
        a = rng.randint(lo, hi)
        if kind == "sadd":
            # draw b from the range that keeps a + b representable: no overflow, no resampling loop
            b = rng.randint(max(lo, lo - a), min(hi, hi - a))
            r = to_twos(a + b, n)
            return kind, f"{to_twos(a, n)}+{to_twos(b, n)}=", r, f"check: {r}-{to_twos(b, n)}={to_twos(a, n)}"
        if kind == "ssub":
            b = rng.randint(max(lo, a - hi), min(hi, a - lo))
            r = to_twos(a - b, n)
            return kind, f"{to_twos(a, n)}-{to_twos(b, n)}=", r, f"check: {r}+{to_twos(b, n)}={to_twos(a, n)}"
        if kind == "sto_dec":
            return kind, f"{to_twos(a, n)}→dec", str(a), ""
        return kind, f"{a}→bin", to_twos(a, n), ""

    @staticmethod
    def _chain(rng, n: int) -> tuple[str, str]:
        """A left-to-right chain of 2-3 additions/subtractions that never goes negative."""
        m = max(2, n // 2)
        value = rng.randrange(1 << m)
        body = to_bits(value, m)
        for _ in range(rng.choice((2, 3))):
            x = rng.randrange(1 << m)
            if rng.random() < 0.5 and value >= x:
                value -= x
                body += f"-{to_bits(x, m)}"
            else:
                value += x
                body += f"+{to_bits(x, m)}"
        return body + "=", to_bits(value)

    def score(self, item: SkillItem, output: str) -> Score:
        """Check the final answer exactly, plus every part the item's signals require."""
        want, got = _parts(item.answer), _parts(output)
        checks = {key: got.get(key) == value for key, value in want.items()}
        partial = sum(checks.values()) / len(checks)
        return Score(all(checks.values()), partial, {"parts": checks, "expected": want["final"]})

    def distinct_prompts(self, level: int) -> int | None:
        """Exact prompt-space size, or None once it exceeds 10**6 (from level 7 up it always does)."""
        n, ops = bin_width(level), bin_ops(level)
        if any(op not in {"add", "sub", "cmp"} for op in ops):
            # convert and later ops arrive with symbol mappings (x57 variants): far beyond 10**6
            return None
        pairs = 1 << (2 * n)
        total = pairs  # add: every ordered operand pair
        if "sub" in ops:
            total += (1 << n) * ((1 << n) + 1) // 2  # a >= b
        if "cmp" in ops:
            total += pairs
        total *= len(PHRASES)
        return total if total <= 10**6 else None

    def facts(self, item: SkillItem) -> str:
        """The body in plain 0/1 digits: operation, operands and width, without phrase, signals or map."""
        m = _PROMPT_RE.match(item.prompt)
        if not m:
            raise ValueError(f"bin: not a bin prompt: {item.prompt!r}")
        body = m["body"]
        if m["s0"]:
            body = body.translate(str.maketrans({m["s0"]: ZERO, m["s1"]: ONE}))
        return body.translate(str.maketrans({ZERO: "0", ONE: "1"}))

    def longest(self, level: int) -> tuple[int, int]:
        """Upper bound from the structure: the longest phrase with every signal and the map in the
        header before the widest body; the longest result with every line the level's signals can
        ask of its operation (each line at its widest)."""
        n, signals = bin_width(level), bin_signals(level)
        m = max(2, n // 2)
        header = max(map(len, PHRASES)) + sum(len(f" [{sig}]") for sig in signals)
        header += len(f" map {ZERO}=x {ONE}=y") if level >= MAP_FROM_LEVEL else 0
        signed, dec, sdec = len(f"s{n} "), len(str((1 << n) - 1)), len(str(-(1 << (n - 1))))
        family_ops = {
            "add": {"add": 2 * n + 2},
            "sub": {"sub": 2 * n + 2},
            "cmp": {"cmp": 2 * n + 1},
            "convert": {"to_dec": n + 4, "to_bin": dec + 4},
            "signed": {"sadd": signed + 2 * n + 2, "ssub": signed + 2 * n + 2},
            "mul": {"mul": 2 * m + 2},
            "chain": {"chain": 4 * m + 4},
        }
        family_ops["signed"] |= {"sto_dec": signed + n + 4, "sto_bin": signed + sdec + 4}
        result = {"add": n + 1, "sub": n, "cmp": 1, "to_dec": dec, "to_bin": n, "sadd": n, "ssub": n}
        result |= {"sto_dec": sdec, "sto_bin": n, "mul": 2 * m, "chain": m + 2}
        trace = sum(len(f"b{i}: x+y+z=r cX") for i in range(n)) + n - 1
        work = {"add": len("carry: ") + n, "sub": len("borrow: ") + n}
        work["mul"] = len("pp: ") + sum(m + i for i in range(m)) + m - 1
        check = {"add": 3 * n + 10, "sub": 3 * n + 9, "sadd": 3 * n + 9, "ssub": 3 * n + 9, "mul": 4 * m + 9}
        prompt, answer = 0, 0
        for family in bin_ops(level):
            for op, body in family_ops[family].items():
                prompt = max(prompt, header + len(": ") + body)
                lines = [len("= ") + result[op]]
                if "trace" in signals and op in SIGNAL_OPS["trace"]:
                    lines.append(trace)
                if "show-work" in signals and op in SIGNAL_OPS["show-work"]:
                    lines.append(work[op])
                if "verify" in signals and op in SIGNAL_OPS["verify"]:
                    lines.append(check[op])
                answer = max(answer, result[op] if len(lines) == 1 else sum(lines) + len(lines) - 1)
        return prompt, answer
