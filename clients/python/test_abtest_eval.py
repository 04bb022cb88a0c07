"""Tests of abtest_eval: every vector of clients/vectors.json, GrowthBook's hash cases (fetched
at test time by clients/growthbook_cases.py), and properties the specification promises.

    python3 -m unittest discover -s clients/python
"""
import json
import os
import sys
import unittest
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, CLIENTS)

import growthbook_cases  # noqa: E402
from abtest_conditions import number_text, padded_version  # noqa: E402
from abtest_eval import (bucket, coverage_bucket, evaluate, gb_v1, gb_v2, instant, matches,  # noqa: E402
                         validate_condition)

with open(os.path.join(CLIENTS, "vectors.json"), encoding="utf-8") as f:
    VECTORS = json.load(f)
HASHES = {"bucket": lambda v: bucket(v["salt"], v["id"]),
          "coverage_bucket": lambda v: coverage_bucket(v["salt"], v["id"]),
          "gb_v2": lambda v: gb_v2(v["seed"], v["id"])}
NOW = "2026-12-01T00:00:00Z"


class Vectors(unittest.TestCase):
    """Every vector of clients/vectors.json."""

    def test_the_file_has_every_section(self):
        self.assertEqual(VECTORS["version"], 1)
        for section, at_least in [("hash", 50), ("conditions", 150), ("evaluations", 200), ("validations", 30)]:
            self.assertGreaterEqual(len(VECTORS[section]), at_least, section)

    def test_hash(self):
        for v in VECTORS["hash"]:
            with self.subTest(v):
                self.assertEqual(HASHES[v["kind"]](v), v["expected"])

    def test_conditions(self):
        for v in VECTORS["conditions"]:
            with self.subTest(v["name"]):
                self.assertIs(matches(v["condition"], v["attributes"]), v["expected"])

    def test_evaluations(self):
        for v in VECTORS["evaluations"]:
            with self.subTest(v["name"]):
                got = evaluate(v["config"], v["experiment_id"], v["user_id"], v["attributes"], v["now"])
                self.assertEqual(got, v["expected"])

    def test_validations(self):
        for v in VECTORS["validations"]:
            with self.subTest(v["name"]):
                self.assertEqual([path for path, _ in validate_condition(v["condition"])], v["expected"])


class GrowthBookHashCases(unittest.TestCase):
    """GrowthBook's own `hash` cases (crate growthbook-rust 0.4.0, sha256-pinned): gb_v2 and
    gb_v1 give their expected values. A failed download fails the test."""

    @classmethod
    def setUpClass(cls):
        try:
            cls.cases = growthbook_cases.hash_cases()
        except growthbook_cases.CasesUnavailable as e:
            cls.cases, cls.problem = None, str(e)

    def setUp(self):
        if self.cases is None:
            self.fail(f"GrowthBook's hash cases are unavailable: {self.problem}")

    def check(self, version, function):
        cases = [c for c in self.cases if c[2] == version]
        self.assertGreater(len(cases), 5, f"version {version} cases")
        for seed, user_id, _, expected in cases:
            with self.subTest(seed=seed, id=user_id):
                self.assertEqual(function(seed, user_id), expected)
        print(f"\nGrowthBook hash cases, version {version}: {len(cases)} passed", file=sys.stderr)

    def test_version_2(self):
        self.check(2, gb_v2)

    def test_version_1(self):
        self.check(1, gb_v1)


def _config(coverage, hash_kind, experiments=None):
    experiment = {"id": 1, "status": "running", "salt": "grow", "hash": hash_kind, "seed": "grow",
                  "variants": [{"name": f"v{i}", "allocation_percent": p} for i, p in enumerate([33.33, 33.33, 33.34])],
                  "coverage_percent": coverage, "conditions": None, "layer": None, "start_at": None,
                  "stop_at": None, "forced": {}, "holdout": False}
    return {"version": 1, "layers": [], "holdouts": [], "experiments": experiments or [experiment]}


class Properties(unittest.TestCase):
    """Promises of the specification, on 3000 users."""

    def test_raising_coverage_keeps_every_variant(self):
        for kind in ("sha256", "growthbook_v2"):
            low, high = _config(10.0, kind), _config(20.0, kind)
            before = [evaluate(low, 1, f"user-{i}", {}, NOW)["variant"] for i in range(3000)]
            after = [evaluate(high, 1, f"user-{i}", {}, NOW)["variant"] for i in range(3000)]
            kept = [(b, a) for b, a in zip(before, after) if b is not None]
            self.assertTrue(all(b == a for b, a in kept), kind)
            self.assertTrue(200 < len(kept) < 400 and 500 < sum(a is not None for a in after) < 700, kind)

    def test_a_layer_shares_its_users_out(self):
        ranges = [(0, 2500), (2500, 7000), (7000, 10000)]
        experiments = [dict(_config(100.0, "sha256")["experiments"][0], id=i, salt=f"e{i}",
                            layer={"key": "k", "range": list(r)}) for i, r in enumerate(ranges)]
        config = dict(_config(100.0, "sha256", experiments), layers=[{"key": "k", "salt": "k-salt"}])
        counts = [0, 0, 0]
        for u in range(3000):
            reasons = [evaluate(config, i, f"user-{u}", {}, NOW)["reason"] for i in range(3)]
            self.assertEqual(sorted(reasons), ["assigned", "not_in_layer", "not_in_layer"], u)
            counts[reasons.index("assigned")] += 1
        self.assertTrue(all(abs(c - 3000 * (r[1] - r[0]) / 10000) < 150 for c, r in zip(counts, ranges)), counts)

    def test_allocations_are_honoured(self):
        config = _config(100.0, "sha256")
        firsts = sum(evaluate(config, 1, f"user-{i}", {}, NOW)["variant"] == "v0" for i in range(3000))
        self.assertLess(abs(firsts - 1000), 130)


class Details(unittest.TestCase):
    def test_instants(self):
        self.assertEqual(instant("2026-12-01T01:00:00+01:00"), instant("2026-12-01T00:00:00Z"))
        self.assertEqual(instant("1970-01-01T00:00:00.000000001Z"), 1)
        self.assertEqual(instant("1969-12-31T23:59:59Z"), -10**9)
        self.assertEqual(instant(datetime(2026, 12, 1, 1, tzinfo=timezone(timedelta(hours=1)))), instant(NOW))
        for bad in ["2026-02-29T00:00:00Z", "2026-12-01", "2026-12-01T00:00:00", "2026-12-01T24:00:00Z", None]:
            with self.subTest(bad), self.assertRaises(ValueError):
                instant(bad)
        with self.assertRaises(ValueError):
            instant(datetime(2026, 12, 1))

    def test_numbers_are_written_as_javascript_does(self):
        for x, expected in [(1.0, "1"), (-12.5, "-12.5"), (1e21, "1e+21"), (123e-9, "1.23e-7"),
                            (5e-324, "5e-324"), (2**53 + 2, "9007199254740994"), (10**400, "Infinity")]:
            self.assertEqual(number_text(x), expected)

    def test_padded_versions(self):
        self.assertEqual(padded_version("v1.2.3+b"), "    1-    2-    3-~")
        self.assertEqual(padded_version("1.0.0-rc.12"), "    1-    0-    0-rc-   12")

    def test_unknown_experiment_and_hash(self):
        with self.assertRaises(KeyError):
            evaluate(_config(100.0, "sha256"), 2, "u", {}, NOW)
        with self.assertRaises(ValueError):
            evaluate(_config(100.0, "md5"), 1, "u", {}, NOW)

    def test_defaults(self):
        config = _config(100.0, "sha256")
        del config["experiments"][0]["hash"]
        self.assertEqual(evaluate(config, 1, "u")["reason"], "assigned")


if __name__ == "__main__":
    unittest.main()
