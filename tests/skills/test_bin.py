"""BIN v4, the reference's skill: level = bit width, every operation at every level, prefix notation.

Answers are recomputed here by an independent oracle: it parses the prompt (Symbol Key, Operations table,
the prefix call) itself and evaluates it with Python integers, then compares with the line of the
reference answer that states the result.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from realm_pipeline.skills import get_skill
from realm_pipeline.skills.base import SkillItem
from realm_pipeline.skills.bin import AUX_TASKS, DIFFICULTIES, NAME_POOLS, OPERATIONS, SIGN_RULES

BIN = get_skill("bin")
SIGNED = {"add_signed", "subtract_signed", "multiply_signed", "negate", "absolute_value"}
# Names the reference uses without a table entry (from L18): the pools are the skill's vocabulary.
POOL_NAME = {name: op for op, names in NAME_POOLS.items() for name in names}


# ---------------------------------------------------------------- the oracle


class Bits:
    """An item's bit notation, read from its Symbol Key (circled digits without one)."""

    def __init__(self, prompt: str) -> None:
        self.zero, self.one, self.sep, self.names = "⓪", "①", "", {}
        if prompt.startswith("Symbol Key:"):
            key, table = prompt.split("\n\n")[:2]
            self.zero = re.search(r"^  (.+) = 0 \(zero bit\)$", key, re.M)[1]
            self.one = re.search(r"^  (.+) = 1 \(one bit\)$", key, re.M)[1]
            self.sep = "-" if self.zero.isalpha() else ""
            self.names = dict(re.findall(r"^  (\S+) = (\w+)$", table, re.M))

    def write(self, value: int, width: int | None = None) -> str:
        """A non-negative value in minimal form, or `width` digits."""
        digits = bin(value)[2:] if width is None else bin(value)[2:].zfill(width)
        return self.sep.join(self.one if d == "1" else self.zero for d in digits)

    def read(self, text: str) -> str:
        """Written bits as a 0/1 string."""
        if self.sep:
            return "".join("1" if part == self.one else "0" for part in text.split(self.sep))
        out = ""
        while text:
            symbol = self.zero if text.startswith(self.zero) else self.one
            assert text.startswith(symbol), text
            out, text = out + ("0" if symbol == self.zero else "1"), text[len(symbol) :]
        return out

    def op(self, name: str) -> str:
        return self.names.get(name) or POOL_NAME.get(name, name) if name not in OPERATIONS else name


def parse_call(text: str) -> tuple[str, list]:
    """`name(arg, arg)` -> (name, args), args nested calls or strings."""
    m = re.fullmatch(r"([^\s(),]+)\((.*)\)", text)
    assert m, text
    args, depth, start = [], 0, 0
    for k, ch in enumerate(m[2] + ","):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            arg = m[2][start:k].strip()
            args.append(parse_call(arg) if arg.endswith(")") else arg)
            start = k + 1
    return m[1], args


def evaluate(call: tuple[str, list], t: Bits) -> tuple[str, int | bool, int | None]:
    """(operation, value, signed result width or None) of a parsed call."""
    name, args = call
    op = t.op(name)

    def unsigned(arg) -> int:
        return evaluate(arg, t)[1] if isinstance(arg, tuple) else int(t.read(arg), 2)

    if op in SIGNED:
        width = int(args[-1])
        vals = []
        for arg in args[:-1]:
            raw = t.read(arg)
            assert len(raw) == width, (raw, width)
            vals.append(int(raw, 2) - (1 << width) * (raw[0] == "1"))
        value = {
            "add_signed": lambda: vals[0] + vals[1],
            "subtract_signed": lambda: vals[0] - vals[1],
            "multiply_signed": lambda: vals[0] * vals[1],
            "negate": lambda: -vals[0],
            "absolute_value": lambda: abs(vals[0]),
        }[op]()
        out_width = 2 * width if op == "multiply_signed" else width
        assert -(1 << (out_width - 1)) <= value < 1 << (out_width - 1), "overflow"
        return op, value, out_width
    if op == "tobinary":
        return op, int(args[0]), None
    a = [unsigned(x) for x in args]
    value = {
        "add": lambda: a[0] + a[1],
        "subtract": lambda: a[0] - a[1],
        "multiply": lambda: a[0] * a[1],
        "increment": lambda: a[0] + 1,
        "decrement": lambda: a[0] - 1,
        "multiply_by_2": lambda: a[0] * 2,
        "divide_by_2": lambda: a[0] // 2,
        "todecimal": lambda: a[0],
        "equals": lambda: a[0] == a[1],
        "lessthan": lambda: a[0] < a[1],
        "greaterthan": lambda: a[0] > a[1],
        "minimum": lambda: min(a),
        "maximum": lambda: max(a),
    }[op]()
    assert value >= 0
    return op, value, None


def written(op: str, value: int | bool, width: int | None, t: Bits) -> str:
    """How the reference writes a result."""
    if isinstance(value, bool) or op == "todecimal":
        return str(value)
    if width is not None:
        return t.write(value % (1 << width), width)
    return t.write(value)


def question_of(item: SkillItem) -> tuple[Bits, str, str]:
    """(notation, signal, the question line) of an item."""
    t = Bits(item.prompt)
    body = (
        item.prompt.split("\n\n")[2]
        if item.prompt.startswith("Symbol Key:")
        else item.prompt.split("\n\n")[0]
    )
    m = re.fullmatch(r"Compute(?: \[([a-z-]+)\])?: (.*)", body)
    return t, (m[1] or "none") if m else "none", m[2] if m else body


def expected_result_line(item: SkillItem) -> str:
    """The line of the reference answer that must state the result, rebuilt by the oracle."""
    t, signal, question = question_of(item)
    operation = item.tags["operation"]
    if operation.startswith("sign_rule:"):
        expr = question.removeprefix("Apply the sign rule: ")
        value = eval(expr.replace("×", "*"))  # noqa: S307 - a (-a) × (-b) expression the test just read
        return f"{expr} = {value}"
    if operation.startswith("aux:"):
        return aux_answer(operation[4:], question, t)
    call = parse_call(question)
    op, value, width = evaluate(call, t)
    result = written(op, value, width, t)
    if operation == "chain_add_add" and signal == "verify":
        (_, inner), z = call[1]
        inner_sum = evaluate(call[1][0], t)[1]
        z_value = int(t.read(z), 2)
        return f"Outer: {call[0]}({t.write(inner_sum)}, {z}) = {result} ({inner_sum}+{z_value}={value})"
    if operation.startswith("chain_"):
        return {
            "verify": f" = {result} (",
            "show-work": f"Result: {result}",
            "trace": f"Final: {result} = {value}",
        }[signal]
    shown = call[0] + "(" + ", ".join(call[1][:-1] if op in SIGNED else call[1]) + ")"
    if signal in ("none", "verify"):
        return f"{shown} = {result}"
    if signal == "show-work":
        return f"Result: {result}"
    return f"Final: {result}" if isinstance(value, bool) else f"Final: {result} = {value}"


def aux_answer(task: str, question: str, t: Bits) -> str:
    """The answer of an auxiliary task, from the question alone."""

    def value(text: str) -> int:
        return evaluate(parse_call(text), t)[1]

    if task == "error_detection":
        call = question.removeprefix("Find and fix the error: ").rsplit(" = ", 1)[0]
        return f"{call} = {t.write(value(call))}"
    if task == "true_false":
        call, shown = question.removeprefix("True or false: ").rsplit(" = ", 1)
        return str(value(call) == int(t.read(shown), 2))
    if task == "fill_blank":
        m = re.fullmatch(r"Fill in the blank: \S+\((\S+), \?\) = (\S+)", question)
        return f"? = {t.write(int(t.read(m[2]), 2) - int(t.read(m[1]), 2))}"
    if task == "reverse":
        m = re.fullmatch(r"Find x: \S+\(x, (\S+)\) = (\S+)", question)
        return f"x = {t.write(int(t.read(m[2]), 2) - int(t.read(m[1]), 2))}"
    if task == "comparison":
        first, second = re.fullmatch(r"Which is larger: (.+\)) or (.+\))\?", question).groups()
        left, right = value(first), value(second)
        if left == right:
            return f"Both equal {t.write(left)}"
        return f"{first} = {t.write(left)}" if left > right else f"{second} = {t.write(right)}"
    if task == "properties":
        m = re.fullmatch(r"Is (\S+) (divisible by 2|a power of 2)\?", question)
        v = int(t.read(m[1]), 2)
        yes = v % 2 == 0 if m[2] == "divisible by 2" else v > 0 and v & (v - 1) == 0
        return "Yes" if yes else "No"
    assert task == "overflow", task
    name, args = parse_call(question.removeprefix("Does ").removesuffix(" overflow?"))
    width = int(args[-1])
    vals = [int(t.read(x), 2) - (1 << width) * (t.read(x)[0] == "1") for x in args[:-1]]
    return "Yes" if not -(1 << (width - 1)) <= sum(vals) < 1 << (width - 1) else "No"


def sample(level: int, count: int, seed: int = 3) -> list[SkillItem]:
    return [BIN.generate(level, seed, i) for i in range(count)]


# ---------------------------------------------------------------- answers and layout


@pytest.mark.parametrize("level", range(1, 31))
def test_every_answer_matches_the_independent_oracle(level: int) -> None:
    for item in sample(level, 150):
        line = expected_result_line(item)
        assert any(line in ln for ln in item.answer.split("\n")), (item.prompt, item.answer, line)


def test_the_references_own_example_is_written_as_the_reference_writes_it() -> None:
    found = {}
    for level in (1, 2):
        for item in sample(level, 4000, seed=1):
            found.setdefault(item.prompt, item.answer)
    assert found["Compute: add(①⓪, ①)"] == "add(①⓪, ①) = ①①"
    assert found["Compute: tobinary(2)"] == "tobinary(2) = ①⓪"
    assert found["Compute: todecimal(①⓪⓪)"] == "todecimal(①⓪⓪) = 4"
    assert found["Compute: tobinary(4)"] == "tobinary(4) = ①⓪⓪"


def test_level_is_the_bit_width_and_operands_span_it() -> None:
    assert [BIN.params(lv).bits for lv in range(1, 31)] == [lv + 1 for lv in range(1, 30)] + [32]
    for level in (1, 2, 5, 17, 29, 30):
        bits = BIN.params(level).bits
        widest_unsigned, signed_widths = 0, set()
        for item in sample(level, 600):
            if item.tags["operation"] not in OPERATIONS or item.tags["signal"] != "none":
                continue
            t, _, question = question_of(item)
            name, args = parse_call(question)
            op = t.op(name)
            if op in SIGNED:
                signed_widths |= {int(args[-1])} | {len(t.read(a)) for a in args[:-1]}
            elif op in ("add", "subtract", "equals", "lessthan", "greaterthan", "minimum", "maximum"):
                lengths = [len(t.read(a)) for a in args]
                # minimal form: no leading zero unless the value is zero
                assert all(t.read(a) == "0" or t.read(a)[0] == "1" for a in args), question
                widest_unsigned = max(widest_unsigned, *lengths)
        assert widest_unsigned == bits, (level, widest_unsigned)
        assert signed_widths == {bits}, (level, signed_widths)


@pytest.mark.parametrize("level", range(1, 31))
def test_every_operation_signal_aux_task_and_sign_rule_appears_at_every_level(level: int) -> None:
    items = sample(level, 1500, seed=5)
    ops = Counter(it.tags["operation"] for it in items)
    assert set(OPERATIONS) <= set(ops), (level, set(OPERATIONS) - set(ops))
    assert {f"aux:{task}" for task in AUX_TASKS} <= set(ops)
    assert {f"sign_rule:{rule}" for rule in SIGN_RULES} <= set(ops)
    assert {it.tags["signal"] for it in items} == set(DIFFICULTIES)
    assert {"chain_add_add", "chain_multiply_add", "chain_subtract_add_add"} <= set(ops)


def test_difficulty_follows_the_references_bands() -> None:
    for level, want in ((3, (50, 35, 12, 3)), (13, (30, 35, 25, 10)), (28, (15, 25, 35, 25))):
        items = [
            it for it in sample(level, 3000, seed=8) if not it.tags["operation"].startswith(("aux", "sign"))
        ]
        counts = Counter(it.tags["signal"] for it in items)
        shares = [100 * counts[d] / len(items) for d in DIFFICULTIES]
        assert all(abs(got - w) < 4 for got, w in zip(shares, want, strict=True)), (level, shares)


def test_a_lower_levels_problems_appear_verbatim_at_higher_levels() -> None:
    # no padding: an L1 problem (operands below 4) is the same prompt at L4, answer included
    l1 = {it.prompt: it.answer for it in sample(1, 30_000, seed=2)}
    hits, small = 0, 0
    for item in sample(4, 30_000, seed=4):
        t, signal, question = question_of(item)
        if signal != "none" or item.tags["operation"] not in set(OPERATIONS) - SIGNED or t.zero != "⓪":
            continue
        name, args = parse_call(question)
        if all(len(a) <= 2 if name != "tobinary" else int(a) < 4 for a in args):
            small += 1
            hits += item.prompt in l1
            if item.prompt in l1:
                assert l1[item.prompt] == item.answer
    assert small > 100 and hits == small, (hits, small)


def test_symbol_language_from_level_8_with_key_table_and_decoys() -> None:
    for level in range(1, 8):
        assert not any("Symbol Key" in it.prompt for it in sample(level, 200))
    for level in (8, 17, 18, 30):
        items = [it for it in sample(level, 600) if not it.tags["operation"].startswith("sign_rule")]
        keyed = [it for it in items if it.prompt.startswith("Symbol Key:")]
        assert 0.68 <= len(keyed) / len(items) <= 0.82, level
        decoys = 0
        for item in keyed:
            t = Bits(item.prompt)
            rest = item.prompt.split("\n\n", 2)[2]
            assert "⓪" not in rest + item.answer and "①" not in rest + item.answer
            assert t.zero in rest + item.answer or t.one in rest + item.answer
            used = {t.op(n) for n in re.findall(r"([^\s(),:]+)\(", rest)}
            decoys += bool(set(t.names.values()) - used)
        assert decoys > 0.9 * len(keyed)  # the table renames operations the item does not use
        if level >= 18:
            assert all(
                sorted(Bits(it.prompt).names.values()) == ["divide_by_2", "multiply_by_2"] for it in keyed
            )


# ---------------------------------------------------------------- scoring both ways


def _one_change(item: SkillItem, kind: str) -> str | None:
    """The reference answer with its result changed in one digit, one sign or one symbol."""
    t = Bits(item.prompt)
    line = expected_result_line(item)
    start = item.answer.index(line)
    end = start + len(line)
    if kind == "sign":  # a negative result made positive
        m = re.search(r"-(?=\d+$)", line)
        if not m:
            return None
        line = line[: m.start()] + line[m.end() :]
    elif kind == "digit":
        m = re.search(r"\d(?!.*\d)", line)
        if not m:
            return None
        line = line[: m.start()] + str((int(m[0]) + 1) % 10) + line[m.end() :]
    else:  # one symbol: the last bit of the result written as the other bit
        pos = max(line.rfind(t.zero), line.rfind(t.one))
        if pos < 0:
            return None
        old = t.zero if line.startswith(t.zero, pos) else t.one
        line = line[:pos] + (t.one if old == t.zero else t.zero) + line[pos + len(old) :]
    return item.answer[:start] + line + item.answer[end:]


@pytest.mark.parametrize("level", [1, 4, 9, 16, 18, 30])
def test_both_scorers_take_the_reference_answer_and_reject_one_change(level: int) -> None:
    tried = Counter()
    for item in sample(level, 300, seed=9):
        for scorer in (BIN.score, BIN.score_reference):
            assert scorer(item, item.answer).correct, item
            assert scorer(item, "  " + item.answer + "\n").correct
            assert not scorer(item, "").correct
        # the reference's rule: a response that contains the result line (here: after some chatter)
        assert BIN.score_reference(item, "Sure.\n" + item.answer + "\nDone.").correct
        for kind in ("digit", "sign", "symbol"):
            changed = _one_change(item, kind)
            if changed is None or changed == item.answer:
                continue
            tried[kind] += 1
            exact, reference = BIN.score(item, changed), BIN.score_reference(item, changed)
            assert not exact.correct and exact.partial < 1.0, (kind, item.prompt, changed)
            assert not reference.correct, (kind, item.prompt, changed)
    assert tried["symbol"] > 100 and tried["digit"] > 10, tried
    if level >= 4:
        assert tried["sign"] > 0, tried


def test_reference_scorer_does_not_find_a_short_result_inside_a_longer_one() -> None:
    item = next(it for it in sample(2, 2000, seed=1) if it.prompt == "Compute: add(①⓪, ①)")
    assert BIN.score_reference(item, "add(①⓪, ①) = ①①").correct
    assert not BIN.score_reference(item, "add(①⓪, ①) = ①①⓪").correct
    assert not BIN.score(item, "add(①⓪, ①) = ①①\nextra").correct  # exact: nothing else


# ---------------------------------------------------------------- facts


def test_facts_strip_signal_and_notation_and_name_the_question() -> None:
    for level in (2, 9, 20):
        groups: dict[str, set[str]] = {}
        for item in sample(level, 3000, seed=6):
            key = BIN.facts(item)
            assert "Compute" not in key and "Symbol Key" not in key and "[" not in key
            if item.tags["operation"] in OPERATIONS:
                t, _, question = question_of(item)
                groups.setdefault(key, set()).add(evaluate(parse_call(question), t)[1])
                assert re.fullmatch(r"[a-z_0-9]+\([0-9, ]*\)", key), key  # canonical names, 0/1 bits
        assert all(len(results) == 1 for results in groups.values())  # same facts, same result


# ---------------------------------------------------------------- length bounds in bytes


@pytest.mark.parametrize("level", [1, 7, 8, 16, 17, 18, 30])
def test_longest_bytes_bounds_every_item_and_is_near_the_real_longest(level: int) -> None:
    # the levels where the widest notation changes: none (L1-7), emoji + word bits (L8-16), emoji only
    # (L17), short tables (L18-30)
    items = [BIN.generate(level, seed, i) for seed in (1, 2) for i in range(2000)]
    got_prompt = max(len(it.prompt.encode()) for it in items)
    got_answer = max(len(it.answer.encode()) for it in items)
    bound_prompt, bound_answer = BIN.longest_bytes(level)
    assert got_prompt <= bound_prompt and got_answer <= bound_answer, (level, got_prompt, got_answer)
    # not vacuous, unlike characters x the widest character's 4 bytes (11,740 at L16 for a 3,130-byte
    # item): 4,000 items come within 1.5x of the bound on the whole example
    assert bound_prompt + bound_answer < 1.5 * max(len((it.prompt + it.answer).encode()) for it in items)
