"""Targeting conditions of docs/assignment.md ("Conditions"): `matches` and `validate_condition`.

Standard library only. An attribute is present when its value is a string, a number or a
boolean; None (JSON null), lists and objects count as absent. Where the specification leaves
a detail open, this module follows the choices listed in clients/README.md.
"""
import json
import math
import operator
import re
from decimal import Decimal
from functools import lru_cache

# A finite decimal number as text: what Rust's f64 parser, Python's float() and JavaScript's
# Number() all accept, without blanks, underscores, hexadecimal, "inf" or "nan".
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
DIGITS = re.compile(r"[0-9]+")
COMPARE = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
VERSION = {"$vgt": operator.gt, "$vgte": operator.ge, "$vlt": operator.lt, "$vlte": operator.le,
           "$veq": operator.eq, "$vne": operator.ne}
MAX_PATTERN_CHARS, MAX_LEVELS, MAX_BYTES = 256, 10, 4096
NOT_LITERAL = "not a string, number or boolean"


def is_number(value):
    """True for int and float (bool excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def to_number(value):
    """`value` as a finite float: numbers, and strings that parse as a finite decimal; else None."""
    if isinstance(value, str):
        if not NUMBER.fullmatch(value):
            return None
    elif not is_number(value):
        return None
    try:
        x = float(value)
    except OverflowError:
        return None
    return x if math.isfinite(x) else None


def is_literal(value):
    """A string, a boolean or a finite number."""
    return isinstance(value, (str, bool)) or to_number(value) is not None and is_number(value)


def number_text(x):
    """The shortest round-trip decimal form of `x` as ECMAScript's Number::toString writes it
    (1 not 1.0, 1e+21, 1.5e-7, -0 as 0)."""
    try:
        x = float(x)
    except OverflowError:
        x = math.inf if x > 0 else -math.inf
    if math.isnan(x) or math.isinf(x):
        return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(x, "NaN")
    if x == 0:
        return "0"
    _, digits, exponent = Decimal(repr(abs(x))).as_tuple()
    s = "".join(map(str, digits)).rstrip("0")
    n, k = exponent + len(digits), len(s)
    if k <= n <= 21:
        body = s + "0" * (n - k)
    elif 0 < n <= 21:
        body = s[:n] + "." + s[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * -n + s
    else:
        body = s[0] + ("." + s[1:] if k > 1 else "") + "e" + ("+" if n > 0 else "-") + str(abs(n - 1))
    return ("-" if x < 0 else "") + body


def text(value):
    """An attribute or literal as text: strings as they are, true/false, numbers by `number_text`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return number_text(value)


def equal(actual, literal):
    """Equality of the specification: numerically when the literal is a number, else as text."""
    if is_number(literal):
        x = to_number(actual)
        return x is not None and x == to_number(literal)
    return text(actual) == text(literal)


def padded_version(version):
    """GrowthBook's paddedVersionString: comparable as a plain string."""
    if version.startswith("v"):
        version = version[1:]
    parts = re.split(r"[.-]", version.split("+", 1)[0])
    if len(parts) == 3:
        parts.append("~")
    return "-".join(p.rjust(5) if DIGITS.fullmatch(p) else p for p in parts)


def _rewrite_pattern(pattern):
    """(Python form, problem): `$` outside classes becomes `\\Z` (end of text, as in RE2 and
    JavaScript); groups other than (?:...), back-references and possessive quantifiers,
    which RE2 or JavaScript lack, are problems."""
    out, i, in_class, class_open = [], 0, False, 0
    while i < len(pattern):
        ch, nxt = pattern[i], pattern[i + 1:i + 2]
        if ch == "\\":
            if not in_class and nxt and nxt in "123456789k":
                return None, "back-reference"
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = not (ch == "]" and i > class_open)
        elif ch == "[":
            in_class, class_open = True, i + 1 + (pattern[i + 1:i + 2] == "^")
        elif ch == "(" and nxt == "?" and pattern[i + 2:i + 3] != ":":
            return None, "a group other than (?:...)"
        elif ch in "*+?}" and nxt == "+":
            return None, "possessive quantifier"
        elif ch == "$":
            ch = r"\Z"
        out.append(ch)
        i += 1
    return "".join(out), None


@lru_cache(maxsize=512)
def _compiled(pattern):
    """(compiled regex or None, problem or None) of a `$regex` argument."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return None, f"longer than {MAX_PATTERN_CHARS} characters"
    rewritten, problem = _rewrite_pattern(pattern)
    if problem:
        return None, problem
    try:
        return re.compile(rewritten, re.ASCII), None
    except re.error as e:
        return None, f"does not compile: {e}"


def pattern_problem(pattern):
    """Why `pattern` is not a valid `$regex` argument, or None."""
    return "not a string" if not isinstance(pattern, str) else _compiled(pattern)[1]


def attribute(attributes, name):
    """The value of a present attribute, or None when it is absent."""
    value = attributes.get(name) if isinstance(attributes, dict) else None
    return value if isinstance(value, (str, int, float)) else None


def matches(condition, attributes):
    """True when `condition` (a dict) holds for `attributes` (a dict of top-level names).
    Invalid parts (unknown operators, arguments of the wrong type) never hold."""
    if not isinstance(condition, dict):
        return False
    return all(_key_holds(key, value, attributes) for key, value in condition.items())


def _key_holds(key, value, attributes):
    if key == "$and":
        return isinstance(value, list) and all(matches(c, attributes) for c in value)
    if key == "$or":
        return isinstance(value, list) and any(matches(c, attributes) for c in value)
    if key == "$not":
        return isinstance(value, dict) and not matches(value, attributes)
    if key.startswith("$"):
        return False
    actual = attribute(attributes, key)
    if is_literal(value):
        return actual is not None and equal(actual, value)
    return isinstance(value, dict) and bool(value) and all(
        _operator_holds(op, arg, actual) for op, arg in value.items())


def _operator_holds(op, arg, actual):
    present = actual is not None
    if op in ("$eq", "$ne"):
        return is_literal(arg) and (present and equal(actual, arg)) == (op == "$eq")
    if op in ("$in", "$nin"):
        found = present and any(equal(actual, x) for x in arg) if _literal_list(arg) else None
        return found is not None and found == (op == "$in")
    if op in COMPARE:
        x, y = to_number(actual), to_number(arg) if is_number(arg) else None
        return x is not None and y is not None and COMPARE[op](x, y)
    if op in VERSION:
        return isinstance(arg, str) and present and VERSION[op](
            padded_version(text(actual)), padded_version(arg))
    if op == "$regex":
        regex = _compiled(arg)[0] if isinstance(arg, str) else None
        return regex is not None and present and regex.search(text(actual)) is not None
    if op == "$exists":
        return isinstance(arg, bool) and present == arg
    return False


def _literal_list(value):
    return isinstance(value, list) and all(is_literal(x) for x in value)


def validate_condition(condition, path="conditions"):
    """The problems of `condition` as (path, message) pairs in document order; [] when it is
    valid. Paths look like `conditions.$or[1].country.$regex`."""
    problems = []
    _check_condition(condition, path, 1, problems)
    try:
        size = len(json.dumps(condition, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError):
        size = 0
    if size > MAX_BYTES:
        problems.append((path, f"more than {MAX_BYTES} bytes"))
    return problems


def _check_condition(condition, path, level, problems):
    if not isinstance(condition, dict):
        problems.append((path, "not an object"))
        return
    if level > MAX_LEVELS:
        problems.append((path, f"more than {MAX_LEVELS} levels"))
        return
    for key, value in condition.items():
        here = f"{path}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, list):
                problems.append((here, "not a list"))
                continue
            for i, item in enumerate(value):
                _check_condition(item, f"{here}[{i}]", level + 1, problems)
        elif key == "$not":
            _check_condition(value, here, level + 1, problems)
        elif key.startswith("$"):
            problems.append((here, "unknown operator"))
        elif not is_literal(value):
            _check_operators(value, here, problems)


def _check_operators(value, path, problems):
    if not isinstance(value, dict) or not value:
        problems.append((path, "not a literal or an object of operators"))
        return
    for op, arg in value.items():
        here = f"{path}.{op}"
        if op in ("$in", "$nin") and isinstance(arg, list):
            problems.extend((f"{here}[{i}]", NOT_LITERAL) for i, x in enumerate(arg) if not is_literal(x))
            continue
        problem = _argument_problem(op, arg)
        if problem:
            problems.append((here, problem))


def _argument_problem(op, arg):
    if op in ("$eq", "$ne"):
        return None if is_literal(arg) else NOT_LITERAL
    if op in ("$in", "$nin"):
        return "not a list"
    if op in COMPARE:
        return None if is_number(arg) and to_number(arg) is not None else "not a number"
    if op in VERSION:
        return None if isinstance(arg, str) else "not a string"
    if op == "$regex":
        return pattern_problem(arg)
    if op == "$exists":
        return None if isinstance(arg, bool) else "not a boolean"
    return "unknown operator"
