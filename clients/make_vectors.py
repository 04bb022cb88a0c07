#!/usr/bin/env python3
"""Writes clients/vectors.json (format: docs/assignment.md, "Test vectors") from the
hand-written scenarios of vectors_conditions.py, vectors_evaluations.py and
vectors_assignments.py. Deterministic: the same scenarios give the same file, byte for byte.

Every expected answer is computed by the Python evaluator, checked against the expectation
written by hand in the scenario (reason, and variant where the scenario fixes it; the answer of
every condition and validation), then cross-checked by the JavaScript evaluator (node
clients/js/answer.js). Any disagreement stops the script before it writes anything.

    python3 clients/make_vectors.py            # writes clients/vectors.json
    python3 clients/make_vectors.py --check    # exit 1 when the file is not what it would write
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vectors_assignments  # noqa: E402
import vectors_evaluations  # noqa: E402
from vectors_conditions import CONDITIONS, VALIDATIONS  # noqa: E402
from vectors_support import bucket, coverage_bucket, evaluate, gb_v2  # noqa: E402
from abtest_eval import validate_condition, matches  # noqa: E402

OUT = os.path.join(HERE, "vectors.json")
IDS = ["user_A_123", "", "42", "josé", "Zoë", "用户123", "テスト", "😀", "👩‍💻", "a:b"]
SALTS = ["s1", "", "3b1f0c2a", "café", "盐", "🧂"]
BOTH_NON_ASCII = [("café", "josé"), ("盐", "用户123"), ("🧂", "😀")]
HASHES = {"bucket": bucket, "coverage_bucket": coverage_bucket, "gb_v2": gb_v2}


def hash_vectors():
    """Every hash over ASCII and non-ASCII ids and salts (seeds), and the two halves of a ':'."""
    out = []
    for kind, fixed_salt, fixed_id in [("bucket", "s1", "user_A_123"), ("coverage_bucket", "s1", "u"),
                                       ("gb_v2", "abc", "def")]:
        key = "seed" if kind == "gb_v2" else "salt"
        pairs = [(fixed_salt, i) for i in IDS] + [(s, fixed_id) for s in SALTS if s != fixed_salt] + BOTH_NON_ASCII
        pairs += [("a:b", "c"), ("a", "b:c")]
        out += [{"kind": kind, key: s, "id": i, "expected": HASHES[kind](s, i)} for s, i in dict.fromkeys(pairs)]
    return out


def condition_vectors():
    for c in CONDITIONS:
        got = matches(c["condition"], c["attributes"])
        assert got == c["expected"], f"condition {c['name']!r}: evaluator says {got}, scenario {c['expected']}"
    return CONDITIONS


def validation_vectors():
    for v in VALIDATIONS:
        got = [path for path, _ in validate_condition(v["condition"])]
        assert got == v["expected"], f"validation {v['name']!r}: evaluator says {got}, scenario {v['expected']}"
    return VALIDATIONS


def evaluation_vectors():
    out = []
    for rules in vectors_evaluations.RULES + vectors_assignments.RULES:
        for s in rules():
            got = evaluate(s["config"], s["experiment_id"], s["user_id"], s["attributes"], s["now"])
            want = {"variant": s.get("expect_variant", got["variant"]), "reason": s["expect_reason"]}
            assert got == want, f"evaluation {s['name']!r}: evaluator says {got}, scenario {want}"
            out.append({"name": s["name"], "experiment_id": s["experiment_id"], "user_id": s["user_id"],
                        "attributes": s["attributes"], "now": s["now"], "expected": got, "config": s["config"]})
    names = [v["name"] for v in out]
    assert len(set(names)) == len(names), "evaluation names are not unique"
    return out


def cross_check(vectors):
    """The JavaScript evaluator's answers, compared with the expected ones; exits on a difference."""
    script = os.path.join(HERE, "js", "answer.js")
    result = subprocess.run(["node", script], input=json.dumps(vectors), capture_output=True, text=True, check=True)
    answers = json.loads(result.stdout)
    differences = [(section, v["name"] if "name" in v else v, v["expected"], a)
                   for section in ("hash", "conditions", "evaluations", "validations")
                   for v, a in zip(vectors[section], answers[section]) if v["expected"] != a]
    for d in differences:
        print("JavaScript differs:", json.dumps(d, ensure_ascii=False), file=sys.stderr)
    if differences:
        sys.exit(1)


def render(vectors):
    """One vector per line, non-ASCII characters as they are."""
    def section(name, items, last=False):
        lines = ",\n".join("  " + json.dumps(item, ensure_ascii=False) for item in items)
        return f' "{name}": [\n{lines}\n ]' + ("}" if last else ",")
    return "\n".join(['{"version": 1,', section("hash", vectors["hash"]),
                      section("conditions", vectors["conditions"]), section("evaluations", vectors["evaluations"]),
                      section("validations", vectors["validations"], last=True)]) + "\n"


def main(argv):
    vectors = {"version": 1, "hash": hash_vectors(), "conditions": condition_vectors(),
               "evaluations": evaluation_vectors(), "validations": validation_vectors()}
    cross_check(vectors)
    text = render(vectors)
    assert json.loads(text) == vectors
    if "--check" in argv:
        with open(OUT, encoding="utf-8") as f:
            same = f.read() == text
        print("vectors.json is up to date" if same else "vectors.json differs from make_vectors.py's output")
        return 0 if same else 1
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    counts = ", ".join(f"{len(vectors[k])} {k}" for k in ("hash", "conditions", "evaluations", "validations"))
    print(f"wrote {OUT}: {counts} (cross-checked by the JavaScript evaluator)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
