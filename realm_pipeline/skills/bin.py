"""BIN: binary arithmetic in circled notation (⓪ = 0, ① = 1), 30 levels.

Levels (as the reference): the bit width is level + 1 (2 bits at L1), and the top level takes the
full 32-bit word. L1 already asks the reference's simple operations - increment, decrement,
doubling, halving and compare - and the set grows: add (L2), subtract (L4), conversions to and from
decimal (L6), signed two's complement (L10), multiply (L14), chains of + and - (L20).

Conventions (the model sees them only through examples, so they never vary):
- Operands are written at the level's fixed width (zero-padded) so the prompt shows the bit width;
  multiply and chain operands use half the width (at least 2) so results stay in reach.
- Unsigned results are written WITHOUT leading zeros (zero is a single ⓪). Halving floors (it is
  a right shift); increment and doubling may carry into one more bit.
- Signed values ("sN" marker) are N-bit two's complement patterns, always exactly N digits.
- Plain items answer with the result alone. Items carrying difficulty signals answer with lines:
  trace lines ("b<i>: ..."), then the work line ("carry:"/"borrow:"/"pp:"), then "= <result>", then,
  with [verify], the check lines: a binary "check: ..." restating the result through the inverse
  operation (none for halving, which loses a bit) and a "decimal: ..." line restating the question
  and result in decimal. The scorer checks every part the signals require.
- Each prompt opens with one of PHRASES. The phrasing never changes the answer, so low levels, whose
  operand space is tiny (31 questions at L1), still have a few hundred distinct prompts: the eval set
  holds out prompts, and the hero must answer a held-out prompt from facts it saw under other
  phrasings.
- From level 8 most items use a symbol language: a random digit mapping ("map ⓪=▲ ①=●") rewrites
  every binary digit in the body and the answer (decimal numbers stay decimal), and half of those
  items also rename their operations ("inc=⊙", "+=⊕"): a renamed operation is written with its new
  name wherever the item writes it (body, check and decimal lines; trace lines keep their fixed
  per-bit notation).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from realm_pipeline.skills.base import Score, SkillItem
from realm_pipeline.skills.drills import check_index, check_level, make_rng

ZERO, ONE = "⓪", "①"
# Fixed symbol sets for the symbol language: non-ASCII, none used elsewhere in any prompt.
SYMBOLS = "▲▼●■◆★♠♣"  # digit mappings
OP_SYMBOLS = "⊕⊖⊗⊙◇△▽◁"  # operation renamings
# Operation families, their concrete operations and the level each family arrives at. A family is
# drawn uniformly, then an operation within it, so the four one-operand steps do not crowd out the
# families that arrive later.
FAMILIES: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("step", ("inc", "dec", "double", "halve"), 1),
    ("cmp", ("cmp",), 1),
    ("add", ("add",), 2),
    ("sub", ("sub",), 4),
    ("convert", ("to_dec", "to_bin"), 6),
    ("signed", ("sadd", "ssub", "sto_dec", "sto_bin"), 10),
    ("mul", ("mul",), 14),
    ("chain", ("chain",), 20),
)
SIGNAL_LEVELS: tuple[tuple[str, int], ...] = (("verify", 12), ("show-work", 16), ("trace", 20))
# Which concrete operations each signal can be asked of.
SIGNAL_OPS = {
    "verify": {"inc", "dec", "double", "halve", "add", "sub", "mul", "sadd", "ssub"},
    "show-work": {"add", "sub", "mul"},
    "trace": {"add", "sub"},
}
# How each operation is written in a body; the renamable ones may be renamed by the symbol language.
OP_TOKENS = {"inc": "inc", "dec": "dec", "double": "dbl", "halve": "half", "add": "+", "sub": "-", "mul": "×"}
OP_TOKENS |= {"cmp": "?", "sadd": "+", "ssub": "-"}
RENAMABLE = ("inc", "dec", "dbl", "half", "+", "-", "×", "?")
# Interchangeable openings; the header's signals and mapping follow the phrase.
PHRASES = ("bin", "binary", "calc", "solve", "compute", "eval", "work out", "bin calc", "what is", "sum up")
MAP_FROM_LEVEL = 8
MAP_PROB = 0.75  # the reference: 75 % of samples from L8 use the symbol language
RENAME_PROB = 0.5  # of the mapped items
SIGNAL_PROB = 0.4
UNARY = ("inc", "dec", "double", "halve")

_TRACE_RE = re.compile(r"^b\d+:")
# phrase, signal headers, optional mapping with renamings, then the body: the inverse of the header
_PROMPT_RE = re.compile(
    r"^(?P<phrase>[^:\[]+?)(?P<signals>(?: \[[a-z-]+\])*)"
    r"(?: map ⓪=(?P<s0>.) ①=(?P<s1>.)(?P<renames>(?: [^ :=]+=.)*))?: (?P<body>.*)$",
    re.S,
)
# The reference's primitive each concrete operation exercises.
OP_PRIMITIVE = {
    "inc": "seq_continue",  # successor / predecessor
    "dec": "seq_continue",
    "double": "seq_transform",  # a one-place shift of the digit sequence
    "halve": "seq_transform",
    "cmp": "attn_compare",
    "add": "logic_chain",  # multi-step arithmetic: carries and borrows chain across bits
    "sub": "logic_chain",
    "mul": "logic_chain",
    "chain": "logic_chain",
    "sadd": "logic_chain",
    "ssub": "logic_chain",
    "to_dec": "xfm_decode",
    "sto_dec": "xfm_decode",
    "to_bin": "xfm_encode",
    "sto_bin": "xfm_encode",
}


class Rendered(NamedTuple):
    """One question written out, with the answer lines each signal may ask for."""

    body: str
    result: str
    trace: list[str]  # per-bit lines ([trace]); empty where the operation has none
    work: str | None  # carry / borrow / partial products ([show-work])
    check: str  # binary restatement through the inverse operation ([verify]); "" if none
    decimal: str  # the question and result in decimal ([verify]); "" if none


Renderer = Callable[[dict[str, str]], Rendered]  # operation tokens (after renaming) -> the item


def bin_width(level: int) -> int:
    """Bit width at a level: level + 1 (2 at L1), and the full 32-bit word at L30."""
    check_level("bin", level, BinSkill.max_level)
    return 32 if level == BinSkill.max_level else level + 1


def bin_families(level: int) -> tuple[str, ...]:
    """Operation families available at a level."""
    check_level("bin", level, BinSkill.max_level)
    return tuple(family for family, _, first in FAMILIES if level >= first)


def bin_ops(level: int) -> tuple[str, ...]:
    """Concrete operations available at a level."""
    check_level("bin", level, BinSkill.max_level)
    return tuple(op for _, ops, first in FAMILIES if level >= first for op in ops)


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
    """Split an answer into its scored parts: final, and where present trace, work, check, decimal."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    parts: dict[str, str] = {}
    trace = [ln for ln in lines if _TRACE_RE.match(ln)]
    if trace:
        parts["trace"] = "\n".join(trace)
    results = [pos for pos, ln in enumerate(lines) if ln.startswith("= ")]
    for pos, ln in enumerate(lines):
        if ln.startswith(("carry:", "borrow:", "pp:")):
            parts["work"] = ln
        for key in ("check", "decimal"):
            if ln.startswith(key + ":"):
                # [verify] lines restate a result already given: they must come after it
                parts[key] = ln if results and pos > results[-1] else "misplaced " + ln
    parts["final"] = lines[results[-1]][2:].strip() if results else (lines[-1] if lines else "")
    return parts


class BinSkill:
    """Binary arithmetic in circled notation; see the module docstring for conventions."""

    name = "bin"
    version = "3"
    max_level = 30

    def generate(self, level: int, seed: int, index: int) -> SkillItem:
        """Build one item: pick an operation, draw operands, render prompt and reference answer."""
        n = bin_width(level)
        check_index(self.name, seed, index)
        rng = make_rng(self.name, level, seed, index)
        family = rng.choice(bin_families(level))
        op = rng.choice(next(ops for name, ops, _ in FAMILIES if name == family))
        render = self._question(rng, op, n)
        signals = [s for s in bin_signals(level) if op in SIGNAL_OPS[s] and rng.random() < SIGNAL_PROB]
        header = rng.choice(PHRASES) + "".join(f" [{s}]" for s in signals)
        mapping, renames = None, {}
        if level >= MAP_FROM_LEVEL and rng.random() < MAP_PROB:
            mapping = rng.sample(SYMBOLS, 2)
            if rng.random() < RENAME_PROB:
                # render once with a private marker per token to see which operations the body writes
                markers = {t: chr(0xE000 + i) for i, t in enumerate(RENAMABLE)}
                marked = render(markers).body
                tokens = [t for t in RENAMABLE if markers[t] in marked]
                renames = dict(zip(tokens, rng.sample(OP_SYMBOLS, len(tokens)), strict=True))
        out = render({t: renames.get(t, t) for t in RENAMABLE})
        body = out.body
        if signals:
            lines = list(out.trace) if "trace" in signals else []
            if "show-work" in signals and out.work:
                lines.append(out.work)
            lines.append(f"= {out.result}")
            if "verify" in signals:
                lines += [out.check, out.decimal] if out.check else [out.decimal]
            answer = "\n".join(lines)
        else:
            answer = out.result
        if mapping:
            table = str.maketrans({ZERO: mapping[0], ONE: mapping[1]})
            body, answer = body.translate(table), answer.translate(table)
            header += f" map {ZERO}={mapping[0]} {ONE}={mapping[1]}"
            header += "".join(f" {t}={s}" for t, s in renames.items())
        tags = {"primitive": OP_PRIMITIVE[op], "operation": op, "signal": "+".join(signals) or "none"}
        return SkillItem(self.name, level, seed, index, f"{header}: {body}", answer, tags=tags)

    @staticmethod
    def _question(rng, op: str, n: int) -> Renderer:
        """Draw the operands of `op` at width n; return the renderer that writes them out."""
        hi = 1 << n
        m = max(2, n // 2)
        if op in UNARY:
            a = rng.randrange(1 if op == "dec" else 0, hi)
            r = {"inc": a + 1, "dec": a - 1, "double": 2 * a, "halve": a // 2}[op]
            inverse = {"inc": "dec", "dec": "inc", "double": "half"}.get(op)  # halving loses a bit

            def unary(t: dict[str, str]) -> Rendered:
                tok = t[OP_TOKENS[op]]
                check = f"check: {t[inverse]} {to_bits(r)}={to_bits(a)}" if inverse else ""
                return Rendered(
                    f"{tok} {to_bits(a, n)}=", to_bits(r), [], None, check, f"decimal: {tok} {a}={r}"
                )

            return unary
        if op in ("add", "sub"):
            a, b = rng.randrange(hi), rng.randrange(hi)
            if op == "sub":
                a, b = max(a, b), min(a, b)
            r = a + b if op == "add" else a - b
            trace, marks = (_add_steps if op == "add" else _sub_steps)(a, b, n)
            work = f"carry: {marks}" if op == "add" else f"borrow: {marks}"

            def binary(t: dict[str, str]) -> Rendered:
                tok, inv = (t["+"], t["-"]) if op == "add" else (t["-"], t["+"])
                body = f"{to_bits(a, n)}{tok}{to_bits(b, n)}="
                check = f"check: {to_bits(r)}{inv}{to_bits(b, n)}={to_bits(a, n)}"
                return Rendered(body, to_bits(r), trace, work, check, f"decimal: {a}{tok}{b}={r}")

            return binary
        if op == "cmp":
            a, b = rng.randrange(hi), rng.randrange(hi)
            result = "<" if a < b else ">" if a > b else "="
            return lambda t: Rendered(f"{to_bits(a, n)}{t['?']}{to_bits(b, n)}", result, [], None, "", "")
        if op == "to_dec":
            a = rng.randrange(hi)
            return lambda t: Rendered(f"{to_bits(a, n)}→dec", str(a), [], None, "", "")
        if op == "to_bin":
            a = rng.randrange(hi)
            return lambda t: Rendered(f"{a}→bin", to_bits(a), [], None, "", "")
        if op in ("sadd", "ssub", "sto_dec", "sto_bin"):
            return BinSkill._signed(rng, op, n)
        if op == "mul":
            a, b = rng.randrange(1 << m), rng.randrange(1 << m)
            pps = [to_bits(a << i) for i in range(m) if (b >> i) & 1] or [ZERO]

            def mul(t: dict[str, str]) -> Rendered:
                x = t["×"]
                body, result = f"{to_bits(a, m)}{x}{to_bits(b, m)}=", to_bits(a * b)
                check = f"check: {to_bits(b, m)}{x}{to_bits(a, m)}={result}"
                return Rendered(
                    body, result, [], "pp: " + " ".join(pps), check, f"decimal: {a}{x}{b}={a * b}"
                )

            return mul
        return BinSkill._chain(rng, m)

    @staticmethod
    def _signed(rng, op: str, n: int) -> Renderer:
        """Signed two's complement add/sub/convert with no overflow, behind the "sN" marker."""
        lo, hi = -(1 << (n - 1)), (1 << (n - 1)) - 1
        a = rng.randint(lo, hi)
        prefix = f"s{n} "
        if op == "sto_dec":
            return lambda t: Rendered(f"{prefix}{to_twos(a, n)}→dec", str(a), [], None, "", "")
        if op == "sto_bin":
            return lambda t: Rendered(f"{prefix}{a}→bin", to_twos(a, n), [], None, "", "")
        # draw b from the range that keeps the result representable: no overflow, no resampling loop
        if op == "sadd":
            b = rng.randint(max(lo, lo - a), min(hi, hi - a))
        else:
            b = rng.randint(max(lo, a - hi), min(hi, a - lo))
        r = a + b if op == "sadd" else a - b

        def signed(t: dict[str, str]) -> Rendered:
            tok, inv = (t["+"], t["-"]) if op == "sadd" else (t["-"], t["+"])
            body = f"{prefix}{to_twos(a, n)}{tok}{to_twos(b, n)}="
            check = f"check: {to_twos(r, n)}{inv}{to_twos(b, n)}={to_twos(a, n)}"
            return Rendered(body, to_twos(r, n), [], None, check, f"decimal: {a}{tok}{b}={r}")

        return signed

    @staticmethod
    def _chain(rng, m: int) -> Renderer:
        """A left-to-right chain of 2-3 additions/subtractions at width m that never goes negative."""
        value = rng.randrange(1 << m)
        steps = [(None, value)]
        for _ in range(rng.choice((2, 3))):
            x = rng.randrange(1 << m)
            if rng.random() < 0.5 and value >= x:
                value -= x
                steps.append(("-", x))
            else:
                value += x
                steps.append(("+", x))

        def chain(t: dict[str, str]) -> Rendered:
            body = "".join((t[sign] if sign else "") + to_bits(x, m) for sign, x in steps) + "="
            return Rendered(body, to_bits(value), [], None, "", "")

        return chain

    def score(self, item: SkillItem, output: str) -> Score:
        """Check the final answer exactly, plus every part the item's signals require."""
        want, got = _parts(item.answer), _parts(output)
        checks = {key: got.get(key) == value for key, value in want.items()}
        partial = sum(checks.values()) / len(checks)
        return Score(all(checks.values()), partial, {"parts": checks, "expected": want["final"]})

    def distinct_prompts(self, level: int) -> int | None:
        """Exact prompt-space size below the symbol language (L8), None above 10**6 or from L8."""
        n, ops = bin_width(level), bin_ops(level)
        if level >= MAP_FROM_LEVEL:
            return None  # digit mappings and renamings multiply the space far beyond 10**6
        values, pairs = 1 << n, 1 << (2 * n)
        size = {"inc": values, "dec": values - 1, "double": values, "halve": values, "cmp": pairs}
        size |= {"add": pairs, "sub": values * (values + 1) // 2, "to_dec": values, "to_bin": values}
        total = sum(size[op] for op in ops) * len(PHRASES)
        return total if total <= 10**6 else None

    def facts(self, item: SkillItem) -> str:
        """The body in plain 0/1 digits and canonical operation names: operation, operands and width,
        without phrase, signals, digit mapping or renaming."""
        m = _PROMPT_RE.match(item.prompt)
        if not m:
            raise ValueError(f"bin: not a bin prompt: {item.prompt!r}")
        body = m["body"]
        if m["s0"]:
            body = body.translate(str.maketrans({m["s0"]: ZERO, m["s1"]: ONE}))
            for pair in m["renames"].split():
                token, symbol = pair.rsplit("=", 1)
                body = body.replace(symbol, token)
        return body.translate(str.maketrans({ZERO: "0", ONE: "1"}))

    def longest(self, level: int) -> tuple[int, int]:
        """Upper bound from the structure: the longest phrase with every signal, the map and the
        longest renamings in the header before the widest body; the longest result with every line
        the level's signals can ask of its operation, each line at its widest."""
        n, signals, ops = bin_width(level), bin_signals(level), bin_ops(level)
        m = max(2, n // 2)
        header = max(map(len, PHRASES)) + sum(len(f" [{sig}]") for sig in signals)
        if level >= MAP_FROM_LEVEL:
            # a chain renames both + and -; a step renames its word (at most 4 characters)
            header += len(f" map {ZERO}=x {ONE}=y") + max(len(" half=x"), 2 * len(" +=x"))
        tok = 4  # the longest operation token ("half"), or its one-character renaming
        signed, dec, sdec = len(f"s{n} "), len(str((1 << n) - 1)), len(str(-(1 << (n - 1))))
        body = {op: tok + 1 + n + 1 for op in UNARY}
        body |= {"add": 2 * n + 2, "sub": 2 * n + 2, "cmp": 2 * n + 1, "to_dec": n + 4, "to_bin": dec + 4}
        body |= {"sadd": signed + 2 * n + 2, "ssub": signed + 2 * n + 2}
        body |= {
            "sto_dec": signed + n + 4,
            "sto_bin": signed + sdec + 4,
            "mul": 2 * m + 2,
            "chain": 4 * m + 4,
        }
        result = {"inc": n + 1, "dec": n, "double": n + 1, "halve": n, "add": n + 1, "sub": n, "cmp": 1}
        result |= {"to_dec": dec, "to_bin": n, "sadd": n, "ssub": n, "sto_dec": sdec, "sto_bin": n}
        result |= {"mul": 2 * m, "chain": m + 2}
        trace = sum(len(f"b{i}: x+y+z=r cX") for i in range(n)) + n - 1
        work = {"add": len("carry: ") + n, "sub": len("borrow: ") + n}
        work["mul"] = len("pp: ") + sum(m + i for i in range(m)) + m - 1
        dec1 = len(str((1 << (n + 1)) - 2))  # decimal digits of the largest sum or double
        check = {op: len("check: half ") + 2 * n + 2 for op in ("inc", "dec", "double")}
        check |= {"add": 3 * n + 10, "sub": 3 * n + 9, "sadd": 3 * n + 9, "ssub": 3 * n + 9, "mul": 4 * m + 9}
        decimal = {op: len("decimal: half ") + dec + 1 + dec1 for op in UNARY}
        decimal |= {"add": len("decimal: ") + 2 * dec + 2 + dec1, "sub": len("decimal: ") + 3 * dec + 2}
        decimal |= {op: len("decimal: ") + 3 * sdec + 2 for op in ("sadd", "ssub")}
        decimal["mul"] = len("decimal: ") + 2 * len(str((1 << m) - 1)) + 2 + len(str(((1 << m) - 1) ** 2))
        prompt, answer = 0, 0
        for op in ops:
            prompt = max(prompt, header + len(": ") + body[op])
            lines = [len("= ") + result[op]]
            if "trace" in signals and op in SIGNAL_OPS["trace"]:
                lines.append(trace)
            if "show-work" in signals and op in SIGNAL_OPS["show-work"]:
                lines.append(work[op])
            if "verify" in signals and op in SIGNAL_OPS["verify"]:
                lines += [check.get(op, 0), decimal[op]]
            answer = max(answer, result[op] if len(lines) == 1 else sum(lines) + len(lines) - 1)
        return prompt, answer
