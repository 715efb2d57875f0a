"""BIN v4: binary arithmetic as the reference writes it (`configs/skills/bin.yaml` of the reference).

Two independent axes, as the reference defines them:
- **Level = bit width** and nothing else: L1 is 2 bits, L(n) is n + 1 bits, L30 the full 32-bit word.
  Every operation appears at every level; unsigned operands are drawn uniformly over the level's whole
  range and written in minimal form (no leading zeros), so a level's distribution contains every lower
  level's problems. Signed operands are the level's width in two's complement (the width is an argument:
  `add_signed(①①⓪, ⓪①⓪, 3)`), as the reference writes them.
- **Difficulty** is drawn per item from the reference's per-band distribution (`DIFFICULTY_BANDS`):
  none / `[verify]` / `[show-work]` / `[trace]`, each with the reference's answer layout
  (`call = result`; + `Verification:`; `Key steps:` / `Result:`; `Operands:` / `Step-by-step:` / `Final:`).
  The harder signals sometimes ask the reference's chains (CHAIN_RATE): `add(add(a, b), c)` with
  `[verify]`, `multiply(add(a, b), c)` with `[show-work]`, `subtract(add(a, b), add(c, d))` with `[trace]`.

Prompts are prefix calls: `Compute: add(①⓪, ①)` -> `add(①⓪, ①) = ①①`; conversions `tobinary(4)`,
`todecimal(①⓪⓪)`. From L8, SYMBOL_RATE of the items use the symbol language: a "Symbol Key" block maps
the two bits to a pair drawn from open pools (emoji, or words joined by "-"), and an "Operations:" table
renames operations with names from per-operation pools, decoys included (the table lists operations the
item does not use). L8-L17 list most operations; from L18 the table lists only the two shift operations
and other operations may appear under an unexplained pool name, as the reference's eval sets do.

Mixed in at documented rates: AUX_RATE auxiliary tasks (the reference's seven: error detection, fill in
the blank, true/false, which is larger, properties, overflow, reverse; the reference publishes their
names, not their layout, so the layouts are realm's) and SIGN_RULE_RATE explicit sign-rule items (the
reference's three rules).

Deviations from the reference, all where its published items are wrong: its nested `[show-work]` and
`[trace]` verification lines read "2 → 4 = 30" (realm writes "(2 + 4) × 5 = 30"), its `[show-work]`
subtraction steps state wrong borrow digits, and its signed chains overflow the width; realm writes
the correct statement and draws signed operands so no result overflows.

Scoring: `score` is realm's exact scorer (every line of the reference answer, in order), and
`score_reference` the reference's rule ("the response contains the expected result"), the result
line bounded so that a longer number does not contain a shorter one.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from realm_pipeline.skills.base import Score, SkillItem
from realm_pipeline.skills.drills import check_index, check_level, make_rng

ZERO, ONE = "⓪", "①"
MAX_LEVEL = 30

# ---------------------------------------------------------------- the level schedule, as data

DIFFICULTIES = ("none", "verify", "show-work", "trace")
# The reference's "difficulty_distribution": (first level, last level, weights of DIFFICULTIES in %).
DIFFICULTY_BANDS: tuple[tuple[int, int, tuple[int, int, int, int]], ...] = (
    (1, 5, (50, 35, 12, 3)),
    (6, 10, (40, 35, 20, 5)),
    (11, 15, (30, 35, 25, 10)),
    (16, 20, (25, 30, 30, 15)),
    (21, 25, (20, 30, 30, 20)),
    (26, 30, (15, 25, 35, 25)),
)
SYMBOL_FROM_LEVEL = 8  # the reference: the symbol language unlocks at L8 ...
SYMBOL_RATE = 0.75  # ... for 75 % of the samples
SHORT_TABLE_FROM_LEVEL = 18  # from here the reference's Operations table lists only the shifts
WORD_BITS_UNTIL_LEVEL = 16  # word bit symbols ("moon-sun") only up to 17 bits: budgets stay < 4096
AUX_RATE = 0.15  # auxiliary tasks (the reference generates them as a separate, smaller batch)
SIGN_RULE_RATE = 0.05  # the reference's explicit sign-rule items
CHAIN_RATE = 0.3  # of [verify] / [show-work] / [trace] items, the reference's chain of that signal
SHOW_STEPS = 4  # the reference's [show-work] lists at most four carry (borrow) positions

# The reference's operations (its yaml's unsigned, signed, comparisons and special groups).
OPERATIONS = (
    "add",
    "subtract",
    "multiply",
    "increment",
    "decrement",
    "add_signed",
    "subtract_signed",
    "multiply_signed",
    "negate",
    "absolute_value",
    "equals",
    "lessthan",
    "greaterthan",
    "minimum",
    "maximum",
    "multiply_by_2",
    "divide_by_2",
    "tobinary",
    "todecimal",
)
DECOY_OPERATIONS = ("divide", "sign_of")  # named in the reference's Operations tables, never asked
AUX_TASKS = ("error_detection", "fill_blank", "true_false", "comparison", "properties", "overflow", "reverse")
SIGN_RULES = ("neg_times_neg", "neg_times_pos", "minus_negative")

# Open pools, from the reference's eval sets. Bit pairs: either order may be 0.
EMOJI_BITS = (
    ("🔺", "🔻"),
    ("🌕", "🌑"),
    ("🐇", "🐢"),
    ("🌴", "🌲"),
    ("🥵", "🥶"),
    ("🌞", "🌙"),
    ("🌟", "⭐"),
    ("🔷", "🔶"),
    ("🧊", "🌋"),
    ("⬜", "⬛"),
    ("🔵", "🔴"),
    ("🎶", "🎵"),
    ("🐻", "🐼"),
    ("⚪", "⚫"),
    ("🌸", "🌺"),
    ("🍎", "🍊"),
    ("🐱", "🐶"),
    ("💧", "🔥"),
    ("🟢", "🟣"),
    ("☀️", "🌙"),
    ("☀️", "❄️"),
    ("💜", "💛"),
)
WORD_BITS = (("zero", "one"), ("moon", "sun"), ("off", "on"), ("lo", "hi"), ("no", "yes"), ("cold", "hot"))
# Operation names, per operation; disjoint across operations so an unexplained name still has one meaning.
NAME_POOLS: dict[str, tuple[str, ...]] = {
    "absolute_value": ("abs", "size", "magnitude", "📏", "📐"),
    "add": ("join", "sum", "merge", "plus", "combine", "🔗", "⚡", "➕"),
    "add_signed": ("sadd", "splus", "signed_add", "➕🔢"),
    "decrement": ("drop", "prev", "dec", "📉", "⬇️"),
    "divide": ("div", "split", "🔪", "✂️", "➗"),
    "divide_by_2": ("half", "div2", "halve", "bisect", "⏬", "🔽"),
    "equals": ("same", "match", "equal", "⚖️", "🟰"),
    "greaterthan": ("over", "above", "larger", "▶️", "➡️"),
    "increment": ("inc", "bump", "next", "📈", "⬆️"),
    "lessthan": ("below", "under", "smaller", "⬅️", "◀️"),
    "maximum": ("max", "most", "largest", "🔺"),
    "minimum": ("least", "min", "smallest", "🔻"),
    "multiply": ("mult", "times", "product", "scale", "✖️", "🌀", "💫", "⭐"),
    "multiply_by_2": ("double", "twice", "mul2", "x2", "⏫", "🔼"),
    "multiply_signed": ("smul", "stimes", "signed_mul", "✖️🔢"),
    "negate": ("neg", "invert", "flip", "🔄", "↔️"),
    "sign_of": ("sign", "direction", "polarity", "🔀", "🧭"),
    "subtract": ("take", "diff", "remove", "reduce", "minus", "➖", "💨"),
    "subtract_signed": ("ssub", "sminus", "signed_sub", "➖🔢"),
    "tobinary": ("binary", "bin", "encode", "📝", "🔢"),
    "todecimal": ("decimal", "decode", "📊", "🔟"),
}
TABLE_OPERATIONS = tuple(sorted(NAME_POOLS))
SHORT_TABLE = ("divide_by_2", "multiply_by_2")
UNEXPLAINED_RENAME_RATE = 0.5  # from L18, an operation outside the short table keeps its name half the time
NAME_TO_OPERATION = {name: op for op, names in NAME_POOLS.items() for name in names}

# Every character the generator can write beyond printable ASCII (the tiny tokenizer's alphabet).
SYMBOLS = "".join(sorted({ch for pair in EMOJI_BITS for s in pair for ch in s}))
OP_SYMBOLS = "".join(
    sorted({ch for names in NAME_POOLS.values() for n in names for ch in n if ord(ch) > 126} | set("⓪①×÷✓→"))
)

# The reference's primitive each operation exercises.
OP_PRIMITIVE = {
    "add": "logic_chain",  # carries chain across bits
    "subtract": "logic_chain",
    "multiply": "logic_chain",
    "add_signed": "logic_chain",
    "subtract_signed": "logic_chain",
    "multiply_signed": "logic_chain",
    "increment": "seq_continue",
    "decrement": "seq_continue",
    "multiply_by_2": "seq_transform",  # a one-place shift of the digit sequence
    "divide_by_2": "seq_transform",
    "negate": "seq_transform",
    "absolute_value": "seq_transform",
    "equals": "attn_compare",
    "lessthan": "attn_compare",
    "greaterthan": "attn_compare",
    "minimum": "attn_compare",
    "maximum": "attn_compare",
    "tobinary": "xfm_encode",
    "todecimal": "xfm_decode",
}
CHAIN_PRIMITIVE = "logic_chain"
AUX_PRIMITIVE = {
    "error_detection": "logic_verify",
    "fill_blank": "logic_chain",
    "true_false": "logic_verify",
    "comparison": "attn_compare",
    "properties": "attn_select",
    "overflow": "logic_verify",
    "reverse": "logic_chain",
}
SIGN_PRIMITIVE = "logic_rule"


@dataclass(frozen=True)
class BinParams:
    """Everything one level's items depend on (build any for tests: `BinSkill._generate(params, rng)`)."""

    level: int
    bits: int  # unsigned operands in [0, 2**bits), signed in the bits-wide two's complement range
    difficulty_weights: tuple[int, int, int, int]  # of DIFFICULTIES, in %
    symbol_rate: float  # share of items in the symbol language
    short_table: bool  # the Operations table names only the two shifts
    word_bits: bool  # word bit symbols may be drawn
    aux_rate: float = AUX_RATE
    sign_rule_rate: float = SIGN_RULE_RATE
    chain_rate: float = CHAIN_RATE

    @property
    def multiplier_bits(self) -> int:
        """Width of multiply's second operand (the reference keeps multipliers short)."""
        return max(2, (self.bits + 3) // 4)

    @property
    def multiplicand_bits(self) -> int:
        """Width of multiply's first operand."""
        return max(2, (self.bits + 1) // 2)


def params(level: int) -> BinParams:
    """The level's parameters, from the schedule above."""
    check_level("bin", level, MAX_LEVEL)
    weights = next(w for first, last, w in DIFFICULTY_BANDS if first <= level <= last)
    return BinParams(
        level=level,
        bits=32 if level == MAX_LEVEL else level + 1,
        difficulty_weights=weights,
        symbol_rate=SYMBOL_RATE if level >= SYMBOL_FROM_LEVEL else 0.0,
        short_table=level >= SHORT_TABLE_FROM_LEVEL,
        word_bits=level <= WORD_BITS_UNTIL_LEVEL,
    )


def bin_width(level: int) -> int:
    """Bit width at a level: level + 1 (2 at L1), and the full 32-bit word at L30."""
    return params(level).bits


# ---------------------------------------------------------------- notation


@dataclass(frozen=True)
class Notation:
    """How an item writes bits and operation names: circled digits, or the symbol language."""

    zero: str = ZERO
    one: str = ONE
    sep: str = ""  # between word bits ("moon-sun")
    names: dict[str, str] = field(default_factory=dict)  # operation -> the name the item writes
    table: tuple[str, ...] = ()  # operations the Operations table lists (sorted)

    def bits(self, value: int, width: int | None = None) -> str:
        """Unsigned value in minimal form, or zero-padded to `width`."""
        raw = format(value, "b") if width is None else format(value, f"0{width}b")
        return self.sep.join(self.one if c == "1" else self.zero for c in raw)

    def twos(self, value: int, width: int) -> str:
        """`width`-bit two's complement pattern of a signed value."""
        return self.bits(value % (1 << width), width)

    def bit(self, b: int) -> str:
        """One digit."""
        return self.one if b else self.zero

    def name(self, op: str) -> str:
        """The name the item writes for an operation."""
        return self.names.get(op, op)

    def header(self) -> str:
        """The Symbol Key and Operations blocks ("" for circled digits)."""
        if self.zero == ZERO:
            return ""
        table = "\n".join(f"  {self.names[op]} = {op}" for op in self.table)
        return (
            f"Symbol Key:\n  {self.zero} = 0 (zero bit)\n  {self.one} = 1 (one bit)\n\n"
            f"Operations:\n{table}\n\n"
        )


CIRCLED = Notation()


def _draw_notation(p: BinParams, rng) -> Notation:
    """Circled digits, or (from L8, at the symbol rate) a Symbol Key and an Operations table."""
    if rng.random() >= p.symbol_rate:
        return CIRCLED
    pools = EMOJI_BITS + (WORD_BITS if p.word_bits else ())
    pair = rng.choice(pools)
    zero, one = pair if rng.random() < 0.5 else pair[::-1]
    sep = "-" if pair in WORD_BITS else ""
    if p.short_table:
        table = SHORT_TABLE
        renamed = [
            op for op in OPERATIONS if op not in SHORT_TABLE and rng.random() < UNEXPLAINED_RENAME_RATE
        ]
    else:
        table = tuple(sorted(rng.sample(TABLE_OPERATIONS, rng.randint(13, len(TABLE_OPERATIONS)))))
        renamed = []
    used = {zero, one}
    names: dict[str, str] = {}
    for op in sorted({*table, *renamed}):
        choices = [n for n in NAME_POOLS[op] if n not in used and zero not in n and one not in n]
        names[op] = rng.choice(choices)
        used.add(names[op])
    return Notation(zero, one, sep, names, table)


# ---------------------------------------------------------------- answers, operation by operation


def _sign(value: int) -> str:
    return "negative" if value < 0 else "positive"


def _call(t: Notation, op: str, args: list[str]) -> str:
    return f"{t.name(op)}({', '.join(args)})"


def _add_positions(a: int, b: int, n: int) -> list[tuple[int, int, int, int, int]]:
    """(position, bit a, bit b, carry in, sum bit, carry out) of an n-position addition, without i."""
    out, c = [], 0
    for i in range(n):
        x, y = (a >> i) & 1, (b >> i) & 1
        s = x + y + c
        out.append((x, y, c, s & 1, s >> 1))
        c = s >> 1
    return out


def _sub_positions(a: int, b: int, n: int) -> list[tuple[int, int, int, int, int]]:
    """(bit a, bit b, borrow in, difference bit, borrow out) of an n-position subtraction a - b."""
    out, w = [], 0
    for i in range(n):
        x, y = (a >> i) & 1, (b >> i) & 1
        d = x - y - w
        out.append((x, y, w, d & 1, int(d < 0)))
        w = int(d < 0)
    return out


def _carry_steps(t: Notation, a: int, b: int, subtract: bool, trace: bool) -> list[str]:
    """Per-position lines: every position ([trace]) or the first carry/borrow positions ([show-work])."""
    n = max(a.bit_length(), b.bit_length(), 1)
    rows = _sub_positions(a, b, n) if subtract else _add_positions(a, b, n)
    sym, word = ("-", "borrow") if subtract else ("+", "carry")
    lines = []
    for i, (x, y, cin, s, cout) in enumerate(rows):
        if trace:
            carry_in, carry_out = f"{word}({t.bit(cin)})", f"{word} {t.bit(cout)}"
            lines.append(
                f"Position {i}: {t.bit(x)} {sym} {t.bit(y)} {sym} {carry_in} = {t.bit(s)} {carry_out}"
            )
        elif cout:
            extra = f" {sym} {word}({t.bit(1)})" if cin else ""
            lines.append(f"Position {i}: {t.bit(x)} {sym} {t.bit(y)}{extra} = {t.bit(s)} ({word})")
    return lines if trace else (lines[:SHOW_STEPS] or [f"No {word} at any position"])


@dataclass(frozen=True)
class Question:
    """One computation: how it is asked and every part of its answer."""

    call: str  # the prompt's call, e.g. add(①⓪, ①)
    answer_call: str  # the call as the answer restates it (signed calls drop the width)
    result: str  # the result as written (bits, decimal, True/False)
    value: int | bool  # the result's value
    verification: str  # decimal restatement, e.g. "2 + 1 = 3"
    operands: list[tuple[str, str]]  # (written, "(value, sign)") for the trace's Operands block
    show: list[str]  # [show-work] key steps
    trace: list[str]  # [trace] step-by-step lines
    note: str = ""  # a line after the prompt ("First is NEGATIVE, second is POSITIVE.")
    sign_rule: str = ""  # "Sign rule: ..." for signed operations
    blank_before_verification: bool = False  # the reference writes comparisons' verification apart


def _binary_operands(t: Notation, values: list[int]) -> list[tuple[str, str]]:
    return [(t.bits(v), f"({v}, positive)") for v in values]


def _signed_operands(t: Notation, values: list[int], n: int) -> list[tuple[str, str]]:
    return [(t.twos(v, n), f"({v}, {_sign(v)})") for v in values]


def _decimal_of_bits(value: int) -> str:
    """The sum of a value's set-bit powers, high first: "4 + 1" ("0" for zero)."""
    powers = [str(1 << i) for i in range(value.bit_length() - 1, -1, -1) if (value >> i) & 1]
    return " + ".join(powers) or "0"


def _compare_step(t: Notation, a: int, b: int) -> str:
    la, lb = max(a.bit_length(), 1), max(b.bit_length(), 1)
    if la != lb:
        return f"Lengths differ: {la} bits vs {lb} bits"
    for i in range(la - 1, -1, -1):
        x, y = (a >> i) & 1, (b >> i) & 1
        if x != y:
            return f"Highest differing position {i}: {t.bit(x)} vs {t.bit(y)}"
    return "All bits equal"


def _question(p: BinParams, op: str, rng, t: Notation) -> Question:
    """Draw the operands of `op` over the level's range and write the question in notation `t`."""
    n, hi = p.bits, 1 << p.bits
    lo_s, hi_s = -(1 << (n - 1)), (1 << (n - 1)) - 1
    if op in ("add", "subtract", "multiply"):
        if op == "multiply":
            a, b = rng.randrange(1 << p.multiplicand_bits), rng.randrange(1 << p.multiplier_bits)
        else:
            a, b = rng.randrange(hi), rng.randrange(hi)
            if op == "subtract":
                a, b = max(a, b), min(a, b)
        r = {"add": a + b, "subtract": a - b, "multiply": a * b}[op]
        sym = {"add": "+", "subtract": "-", "multiply": "×"}[op]
        call = _call(t, op, [t.bits(a), t.bits(b)])
        if op == "multiply":
            set_bits = [i for i in range(b.bit_length()) if (b >> i) & 1]
            show = [f"Bit {i}: add shifted multiplicand" for i in set_bits] or [
                "No set bits in the multiplier"
            ]
            trace = [f"Bit {i}: multiplier={t.bit(1)}, partial={t.bits(a << i)}" for i in set_bits]
            trace = trace or ["No set bits in the multiplier"]
        else:
            show = _carry_steps(t, a, b, op == "subtract", trace=False)
            trace = _carry_steps(t, a, b, op == "subtract", trace=True)
        return Question(
            call, call, t.bits(r), r, f"{a} {sym} {b} = {r}", _binary_operands(t, [a, b]), show, trace
        )
    if op in ("increment", "decrement", "multiply_by_2", "divide_by_2"):
        a = rng.randrange(1 if op == "decrement" else 0, hi)
        call = _call(t, op, [t.bits(a)])
        if op in ("increment", "decrement"):
            r = a + 1 if op == "increment" else a - 1
            show = _carry_steps(t, a, 1, op == "decrement", trace=False)
            trace = _carry_steps(t, a, 1, op == "decrement", trace=True)
            verification = f"{a} {'+' if op == 'increment' else '-'} 1 = {r}"
        elif op == "multiply_by_2":
            r = 2 * a
            show = trace = [f"Shift left by one: append {t.bit(0)}"]
            verification = f"{a} × 2 = {r}"
        else:
            r = a // 2
            show = trace = [f"Shift right by one: drop the lowest bit {t.bit(a & 1)}"]
            verification = f"{a} ÷ 2 = {r} remainder {a & 1}"
        return Question(call, call, t.bits(r), r, verification, _binary_operands(t, [a]), show, trace)
    if op == "tobinary":
        a = rng.randrange(hi)
        call = _call(t, op, [str(a)])
        steps, v = [], a
        while v:
            steps.append(f"{v} ÷ 2 = {v // 2} remainder {t.bit(v & 1)}")
            v //= 2
        steps = steps or [f"0 is {t.bit(0)}"]
        ver = f"{t.bits(a)} = {_decimal_of_bits(a)} = {a}"
        return Question(call, call, t.bits(a), a, ver, [(str(a), "(decimal)")], steps, steps)
    if op == "todecimal":
        a = rng.randrange(hi)
        call = _call(t, op, [t.bits(a)])
        steps = [f"Position {i}: {t.bit(1)} = {1 << i}" for i in range(a.bit_length()) if (a >> i) & 1]
        steps = steps or ["No set bits: 0"]
        return Question(
            call, call, str(a), a, f"{_decimal_of_bits(a)} = {a}", _binary_operands(t, [a]), steps, steps
        )
    if op in ("equals", "lessthan", "greaterthan", "minimum", "maximum"):
        a = rng.randrange(hi)
        # equals: half the pairs equal, or the answer would almost always be False
        b = a if op == "equals" and rng.random() < 0.5 else rng.randrange(hi)
        call = _call(t, op, [t.bits(a), t.bits(b)])
        step = [_compare_step(t, a, b)]
        if op in ("minimum", "maximum"):
            r = min(a, b) if op == "minimum" else max(a, b)
            ver = f"{op[:3]}({a}, {b}) = {r}"
            return Question(call, call, t.bits(r), r, ver, _binary_operands(t, [a, b]), step, step)
        sym = {"equals": "=", "lessthan": "<", "greaterthan": ">"}[op]
        truth = {"equals": a == b, "lessthan": a < b, "greaterthan": a > b}[op]
        ver = f"{a} {sym} {b} is {truth}"
        return Question(
            call,
            call,
            str(truth),
            truth,
            ver,
            _binary_operands(t, [a, b]),
            step,
            step,
            blank_before_verification=True,
        )
    if op in ("negate", "absolute_value"):
        a = rng.randint(lo_s + 1, hi_s)  # -2**(n-1) has no n-bit negation or magnitude
        r = -a if op == "negate" or a < 0 else a
        call = _call(t, op, [t.twos(a, n), str(n)])
        answer_call = _call(t, op, [t.twos(a, n)])
        if op == "negate" or a < 0:
            inverted = t.twos(~a, n)
            steps = [f"Invert every bit: {inverted}", f"Add {t.bit(1)}: {t.twos(-a, n)}"]
        else:
            steps = [f"Already positive: keep {t.twos(a, n)}"]
        ver = f"-({a}) = {r}" if op == "negate" else f"|{a}| = {r}"
        return Question(call, answer_call, t.twos(r, n), r, ver, _signed_operands(t, [a], n), steps, steps)
    # add_signed / subtract_signed / multiply_signed: no result overflows its width
    a = rng.randint(lo_s, hi_s)
    if op == "add_signed":
        b = rng.randint(max(lo_s, lo_s - a), min(hi_s, hi_s - a))
        r, sym, width = a + b, "+", n
        if (a < 0) == (b < 0):
            rule = f"{_sign(a)} + {_sign(b)} = {'more negative' if a < 0 else 'positive'}"
        else:
            rule = f"{_sign(a)} + {_sign(b)} = sign of the larger magnitude"
    elif op == "subtract_signed":
        b = rng.randint(max(lo_s, a - hi_s), min(hi_s, a - lo_s))
        r, sym, width = a - b, "-", n
        rule = "a - (-b) = a + b" if b < 0 else "a - b = a + (-b)"
    else:
        b = rng.randint(lo_s, hi_s)
        r, sym, width = a * b, "×", 2 * n  # the reference writes signed products at twice the width
        rule = f"{_sign(a)} × {_sign(b)} = {'positive' if (a < 0) == (b < 0) else 'negative'}"
    call = _call(t, op, [t.twos(a, n), t.twos(b, n), str(n)])
    answer_call = _call(t, op, [t.twos(a, n), t.twos(b, n)])
    if a < 0 and b < 0:
        note = "Both operands are NEGATIVE."
    elif a >= 0 and b >= 0:
        note = "Both operands are POSITIVE."
    else:
        note = f"First is {_sign(a).upper()}, second is {_sign(b).upper()}."
    state = "ZERO" if r == 0 else _sign(r).upper()
    trace = [
        f"Read a: {t.twos(a, n)} = {a}",
        f"Read b: {t.twos(b, n)} = {b}",
        f"Compute: ({a}) {sym} ({b}) = {r}",
        f"Write {r} in {width} bits: {t.twos(r, width)}",
    ]
    return Question(
        call,
        answer_call,
        t.twos(r, width),
        r,
        f"{a} {sym} {b} = {r}",
        _signed_operands(t, [a, b], n),
        [f"Result is {state}: {r}"],
        trace,
        note=note,
        sign_rule=f"Sign rule: {rule}",
    )


def _render(q: Question, difficulty: str) -> str:
    """The reference's answer layout for a difficulty."""
    if difficulty == "none":
        return f"{q.answer_call} = {q.result}"
    if difficulty == "verify":
        gap = "\n\n" if q.blank_before_verification else "\n"
        return f"{q.answer_call} = {q.result}{gap}Verification: {q.verification}"
    rule = f"{q.sign_rule}\n\n" if q.sign_rule else ""
    if difficulty == "show-work":
        steps = "\n".join(f"  {s}" for s in q.show)
        return f"{q.answer_call}\n\n{rule}Key steps:\n{steps}\n\nResult: {q.result}\nVerification: {q.verification}"
    operands = "\n".join(f"  {label} = {w} {v}" for label, (w, v) in zip("abcd", q.operands, strict=False))
    steps = "\n".join(f"  {s}" for s in q.trace)
    final = f"{q.result} = {q.value}" if not isinstance(q.value, bool) else q.result
    return (
        f"{q.answer_call}\n\nOperands:\n{operands}\n\n{rule}Step-by-step:\n{steps}\n\n"
        f"Final: {final}\n\nVerification: {q.verification} ✓"
    )


def _chain(p: BinParams, difficulty: str, rng, t: Notation) -> tuple[str, str, str]:
    """(operation tag, call, answer) of the reference's chain for a signal."""
    hi = 1 << p.bits
    add, b = t.name("add"), t.bits
    if difficulty == "verify":
        x, y, z = (rng.randrange(hi) for _ in range(3))
        s, r = x + y, x + y + z
        call = f"{add}({add}({b(x)}, {b(y)}), {b(z)})"
        answer = (
            f"{call}\n\nInner: {add}({b(x)}, {b(y)}) = {b(s)} ({x}+{y}={s})\n"
            f"Outer: {add}({b(s)}, {b(z)}) = {b(r)} ({s}+{z}={r})\n\nVerification: {x} + {y} + {z} = {r}"
        )
        return "chain_add_add", call, answer
    if difficulty == "show-work":
        mul = t.name("multiply")
        x, y = rng.randrange(hi), rng.randrange(hi)
        z = rng.randrange(1 << p.multiplier_bits)
        s, r = x + y, (x + y) * z
        call = f"{mul}({add}({b(x)}, {b(y)}), {b(z)})"
        answer = (
            f"{mul}({add}(...))({b(x)}, {b(y)}, {b(z)})\n\nKey steps:\n"
            f"  Inner: {add}({b(x)}, {b(y)}) = {b(s)} ({x}+{y}={s})\n"
            f"  Outer: {mul}({b(s)}, {b(z)}) = {b(r)} ({s}×{z}={r})\n\n"
            f"Result: {b(r)}\nVerification: ({x} + {y}) × {z} = {r}"
        )
        return "chain_multiply_add", call, answer
    sub = t.name("subtract")
    w, x, y, z = (rng.randrange(hi) for _ in range(4))
    if w + x < y + z:  # the difference of the two sums stays unsigned
        w, x, y, z = y, z, w, x
    s1, s2 = w + x, y + z
    r = s1 - s2
    call = f"{sub}({add}({b(w)}, {b(x)}), {add}({b(y)}, {b(z)}))"
    operands = "\n".join(
        f"  {label} = {b(v)} ({v}, positive)" for label, v in zip("abcd", (w, x, y, z), strict=True)
    )
    answer = (
        f"{sub}({add}(...), {add}(...))({b(w)}, {b(x)}, {b(y)}, {b(z)})\n\nOperands:\n{operands}\n\n"
        f"Step-by-step:\n"
        f"  Step 1a: {add}({b(w)}, {b(x)}) = {b(s1)} ({w}+{x}={s1})\n"
        f"  Step 1b: {add}({b(y)}, {b(z)}) = {b(s2)} ({y}+{z}={s2})\n"
        f"  Step 2: {sub}({b(s1)}, {b(s2)}) = {b(r)} ({s1}-{s2}={r})\n\n"
        f"Final: {b(r)} = {r}\n\nVerification: ({w} + {x}) - ({y} + {z}) = {r} ✓"
    )
    return "chain_subtract_add_add", call, answer


def _flip_bit(value: int, rng) -> int:
    """The value with one of its bits (or the next one up) flipped: a near miss, never the value."""
    return value ^ (1 << rng.randrange(max(value.bit_length(), 1) + 1))


def _aux(p: BinParams, task: str, rng, t: Notation) -> tuple[str, str]:
    """(question, answer) of one auxiliary task."""
    hi, n, b = 1 << p.bits, p.bits, t.bits
    a, c = rng.randrange(hi), rng.randrange(hi)
    add = t.name("add")
    if task in ("error_detection", "true_false"):
        op = rng.choice(("add", "subtract", "multiply"))
        if op == "multiply":
            a, c = rng.randrange(1 << p.multiplicand_bits), rng.randrange(1 << p.multiplier_bits)
        elif op == "subtract":
            a, c = max(a, c), min(a, c)
        r = {"add": a + c, "subtract": a - c, "multiply": a * c}[op]
        call = _call(t, op, [b(a), b(c)])
        if task == "error_detection":
            return f"Find and fix the error: {call} = {b(_flip_bit(r, rng))}", f"{call} = {b(r)}"
        shown = r if rng.random() < 0.5 else _flip_bit(r, rng)
        return f"True or false: {call} = {b(shown)}", str(shown == r)
    if task == "fill_blank":
        return f"Fill in the blank: {add}({b(a)}, ?) = {b(a + c)}", f"? = {b(c)}"
    if task == "reverse":
        return f"Find x: {add}(x, {b(c)}) = {b(a + c)}", f"x = {b(a)}"
    if task == "comparison":
        mul = t.name("multiply")
        x, y = rng.randrange(1 << p.multiplicand_bits), rng.randrange(1 << p.multiplier_bits)
        first, second = f"{add}({b(a)}, {b(c)})", f"{mul}({b(x)}, {b(y)})"
        left, right = a + c, x * y
        if left == right:
            answer = f"Both equal {b(left)}"
        else:
            answer = f"{first} = {b(left)}" if left > right else f"{second} = {b(right)}"
        return f"Which is larger: {first} or {second}?", answer
    if task == "properties":
        if rng.random() < 0.5:
            return f"Is {b(a)} divisible by 2?", "Yes" if a % 2 == 0 else "No"
        a = 1 << rng.randrange(n) if rng.random() < 0.5 else a  # powers of 2 are rare otherwise
        return f"Is {b(a)} a power of 2?", "Yes" if a and not a & (a - 1) else "No"
    # overflow: any two n-bit signed operands; the sum overflows when it leaves the n-bit range
    lo_s, hi_s = -(1 << (n - 1)), (1 << (n - 1)) - 1
    x, y = rng.randint(lo_s, hi_s), rng.randint(lo_s, hi_s)
    call = _call(t, "add_signed", [t.twos(x, n), t.twos(y, n), str(n)])
    return f"Does {call} overflow?", "Yes" if not lo_s <= x + y <= hi_s else "No"


def _sign_rule(p: BinParams, rule: str, rng) -> tuple[str, str]:
    """(question, answer) of one explicit sign-rule item, operands in the level's signed range."""
    top = max(1, (1 << (p.bits - 1)) - 1)
    x, y = rng.randint(1, top), rng.randint(1, top)
    if rule == "neg_times_neg":
        return f"Apply the sign rule: (-{x}) × (-{y})", f"neg × neg = pos: (-{x}) × (-{y}) = {x * y}"
    if rule == "neg_times_pos":
        return f"Apply the sign rule: (-{x}) × {y}", f"neg × pos = neg: (-{x}) × {y} = {-x * y}"
    return f"Apply the sign rule: {x} - (-{y})", f"a - (-b) = a + b: {x} - (-{y}) = {x + y}"


# ---------------------------------------------------------------- parsing answers back


_RESULT_PREFIXES = ("Result: ", "Final: ")
_TOKEN_RE = re.compile(r"[^\s(),:?]+")
_NAME_RE = re.compile(r"([^\s(),:?]+)\(")


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.strip().splitlines() if ln.strip()]


def result_line(answer: str) -> str:
    """The line stating the result: `Result:` / `Final:`, a chain's `Outer:`, else the first line."""
    lines = _lines(answer)
    for prefix in (*_RESULT_PREFIXES, "Outer: "):
        for ln in lines:
            if ln.startswith(prefix):
                return ln
    return lines[0] if lines else ""


def _split_prompt(prompt: str) -> tuple[str, str]:
    """(Symbol Key + Operations header, the question line)."""
    paragraphs = prompt.split("\n\n")
    if paragraphs[0].startswith("Symbol Key:"):
        return "\n\n".join(paragraphs[:2]), paragraphs[2]
    return "", paragraphs[0]


def _notation_of(header: str) -> Notation:
    if not header:
        return CIRCLED
    key, table = header.split("\n\n")
    zero = key.split("\n")[1].strip().split(" = ")[0]
    one = key.split("\n")[2].strip().split(" = ")[0]
    names = {}
    for line in table.split("\n")[1:]:
        shown, op = line.strip().split(" = ")
        names[op] = shown
    sep = "-" if any(zero in pair for pair in WORD_BITS) else ""
    return Notation(zero, one, sep, names, tuple(names))


def _decode_bits(token: str, t: Notation) -> str | None:
    """A token written in `t`'s bits as 0/1 digits, or None when it is not a bit string."""
    if t.sep:
        parts = token.split(t.sep)
        if all(part in (t.zero, t.one) for part in parts):
            return "".join("1" if part == t.one else "0" for part in parts)
        return None
    out, pos = [], 0
    while pos < len(token):
        if token.startswith(t.zero, pos):
            out.append("0")
            pos += len(t.zero)
        elif token.startswith(t.one, pos):
            out.append("1")
            pos += len(t.one)
        else:
            return None
    return "".join(out) or None


def _canonical(line: str, t: Notation) -> str:
    """A line with operation names made canonical and bits written 0/1."""
    shown_to_op = {shown: op for op, shown in t.names.items()}

    def name(m: re.Match) -> str:
        token = m[1]
        return shown_to_op.get(token, NAME_TO_OPERATION.get(token, token)) + "("

    line = _NAME_RE.sub(name, line)
    return _TOKEN_RE.sub(lambda m: _decode_bits(m[0], t) or m[0], line)


# ---------------------------------------------------------------- the skill


L1_PROMPTS = 1637  # distinct L1 prompts (tests/test_holdout.py draws them)


class BinSkill:
    """Binary arithmetic as the reference defines it; see the module docstring."""

    name = "bin"
    version = "4"
    max_level = MAX_LEVEL

    def params(self, level: int) -> BinParams:
        """The level's parameters."""
        return params(level)

    def generate(self, level: int, seed: int, index: int) -> SkillItem:
        """Build one item from the level's parameters and the item's private RNG."""
        p = params(level)
        check_index(self.name, seed, index)
        prompt, answer, tags = self._generate(p, make_rng(self.name, level, seed, index))
        return SkillItem(self.name, level, seed, index, prompt, answer, tags=tags)

    @staticmethod
    def _generate(p: BinParams, rng) -> tuple[str, str, dict[str, str]]:
        """(prompt, answer, primitive tags) of one item; a pure function of `p` and the RNG's state."""
        draw = rng.random()
        if draw < p.sign_rule_rate:
            rule = rng.choice(SIGN_RULES)
            question, answer = _sign_rule(p, rule, rng)
            return (
                question,
                answer,
                {"primitive": SIGN_PRIMITIVE, "operation": f"sign_rule:{rule}", "signal": "none"},
            )
        t = _draw_notation(p, rng)
        if draw < p.sign_rule_rate + p.aux_rate:
            task = rng.choice(AUX_TASKS)
            question, answer = _aux(p, task, rng, t)
            tags = {"primitive": AUX_PRIMITIVE[task], "operation": f"aux:{task}", "signal": "none"}
            return t.header() + question, answer, tags
        difficulty = rng.choices(DIFFICULTIES, weights=p.difficulty_weights)[0]
        signal = "" if difficulty == "none" else f" [{difficulty}]"
        if difficulty != "none" and rng.random() < p.chain_rate:
            op, call, answer = _chain(p, difficulty, rng, t)
            tags = {"primitive": CHAIN_PRIMITIVE, "operation": op, "signal": difficulty}
            return f"{t.header()}Compute{signal}: {call}", answer, tags
        op = rng.choice(OPERATIONS)
        q = _question(p, op, rng, t)
        # the reference states the operands' signs under a signed [show-work] / [trace] prompt
        note = f"\n\n{q.note}" if q.note and difficulty in ("show-work", "trace") else ""
        prompt = f"{t.header()}Compute{signal}: {q.call}{note}"
        tags = {"primitive": OP_PRIMITIVE[op], "operation": op, "signal": difficulty}
        return prompt, _render(q, difficulty), tags

    def score(self, item: SkillItem, output: str) -> Score:
        """realm's exact scorer: every line of the reference answer, in order, and nothing else."""
        want, got = _lines(item.answer), _lines(output)
        matched = sum((Counter(want) & Counter(got)).values())
        result = result_line(item.answer)
        correct = want == got
        partial = 1.0 if correct else matched / max(len(want), len(got), 1) * (0.99 if want != got else 1)
        detail = {"mode": "exact", "lines": f"{matched}/{len(want)}", "result": result in got}
        return Score(correct, partial, {**detail, "expected": result})

    def score_reference(self, item: SkillItem, output: str) -> Score:
        """The reference's rule: the response contains the expected result line. The match must end the
        response or be followed by whitespace or punctuation, so `= ①①` is not found inside `= ①①⓪`."""
        expected = result_line(item.answer)
        text = output.strip()
        start, found = 0, False
        while (pos := text.find(expected, start)) >= 0:
            end = pos + len(expected)
            if end == len(text) or text[end].isspace() or text[end] in ".,;!":
                found = True
                break
            start = pos + 1
        return Score(found, 1.0 if found else 0.0, {"mode": "reference", "expected": expected})

    def distinct_prompts(self, level: int) -> int | None:
        """None at every level: even L1 (2 bits) draws 1,637 distinct prompts (saturated over 200k draws;
        L2 ~7.4k, L3 ~26k), so the configured 50 eval + 50 reserve items stay far below the held-out cap
        (half the space) and training keeps the rest (tests/test_holdout.py checks L1)."""
        params(level)
        return None

    def prompt_space(self, level: int) -> int | None:
        """The measured size of a prompt space an allowed eval_items_per_level could exhaust: L1's 1,637
        (saturated over 200k draws), where 900 eval + 737 reserve items would leave training nothing;
        None from L2 (~7.4k), which holds the largest allowed sets with room to spare."""
        return L1_PROMPTS if params(level).level == 1 else None

    def facts(self, item: SkillItem) -> str:
        """The question with signal, Symbol Key and renamings stripped: canonical operation names, bits
        as 0/1, decimal numbers as they are."""
        header, question = _split_prompt(item.prompt)
        question = re.sub(r"^Compute(?: \[[a-z-]+\])?: ", "", question)
        return _canonical(question, _notation_of(header))

    def longest(self, level: int) -> tuple[int, int]:
        """Upper bound of prompt and answer characters, from the structure: every layout rendered at the
        level's widest operands in the widest notation, with a margin for decimal and step counts."""
        return _longest(params(level))

    def longest_bytes(self, level: int) -> tuple[int, int]:
        """Upper bound of prompt and answer UTF-8 bytes, built as `longest` is but in the notation widest
        in bytes (a pretrained hero's byte-level tokens are bounded by these, not by characters x 4)."""
        return _longest(params(level), _utf8_len)


# ---------------------------------------------------------------- length bounds


class _MaxRng:
    """Stands in for the RNG to build the widest items: every draw at the top of its range."""

    def __init__(self, low: bool = False) -> None:
        self.low = low

    def random(self) -> float:
        return 0.0

    def randrange(self, start: int, stop: int | None = None) -> int:
        if stop is None:
            start, stop = 0, start
        return start if self.low else stop - 1

    def randint(self, a: int, b: int) -> int:
        return a if self.low else b

    def choice(self, seq):
        return seq[0]


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _widest_notations(p: BinParams, measure) -> list[Notation]:
    """The widest emoji and (where drawn) word notation under `measure` (characters or bytes): every
    bit the widest symbol, every operation its widest name, the level's whole Operations table."""
    names = {op: max(pool, key=measure) for op, pool in NAME_POOLS.items()}
    table = SHORT_TABLE if p.short_table else TABLE_OPERATIONS
    emoji = max((s for pair in EMOJI_BITS for s in pair), key=measure)
    out = [Notation(emoji, emoji, "", names, table)]
    if p.word_bits:
        word = max((s for pair in WORD_BITS for s in pair), key=measure)
        out.append(Notation(word, word, "-", names, table))
    return out


def _longest(p: BinParams, measure=len) -> tuple[int, int]:
    """Bound of prompt and answer length under `measure` (`len`: characters, `_utf8_len`: bytes)."""
    notations = [CIRCLED] + (_widest_notations(p, measure) if p.symbol_rate else [])
    prompt = answer = 0
    signal = measure("Compute [show-work]: ")
    for t in notations:
        header = measure(t.header())
        for rng in (_MaxRng(), _MaxRng(low=True)):
            for op in OPERATIONS:
                q = _question(p, op, rng, t)
                prompt = max(prompt, header + signal + measure(q.call) + measure(q.note) + 2)
                answer = max(answer, *(measure(_render(q, d)) for d in DIFFICULTIES))
            for d in DIFFICULTIES[1:]:
                _, call, ans = _chain(p, d, rng, t)
                prompt = max(prompt, header + signal + measure(call))
                answer = max(answer, measure(ans))
            for task in AUX_TASKS:
                question, ans = _aux(p, task, rng, t)
                prompt, answer = max(prompt, header + measure(question)), max(answer, measure(ans))
    # the widest operands bound bit counts; carries, step counts and signed decimals can add a little
    return int(prompt * 1.05) + 16, int(answer * 1.1) + 16
