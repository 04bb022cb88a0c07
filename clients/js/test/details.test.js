// Properties the specification promises, and details of the evaluator.
import { test } from "node:test";
import assert from "node:assert/strict";
import { evaluate, instant } from "../abtest-eval.js";
import { compareCodePoints, paddedVersion, text } from "../conditions.js";

const NOW = "2026-12-01T00:00:00Z";
const experiment = (fields = {}) => ({
  id: 1, status: "running", salt: "grow", hash: "sha256", seed: "grow",
  variants: [33.33, 33.33, 33.34].map((p, i) => ({ name: `v${i}`, allocation_percent: p })),
  coverage_percent: 100, conditions: null, layer: null, start_at: null, stop_at: null, forced: {}, holdout: false,
  ...fields,
});
const config = (experiments, layers = []) => ({ version: 1, layers, holdouts: [], experiments });
const users = Array.from({ length: 3000 }, (_, i) => `user-${i}`);

test("raising coverage from 10 to 20 keeps every variant", () => {
  for (const hash of ["sha256", "growthbook_v2"]) {
    const low = config([experiment({ hash, coverage_percent: 10 })]);
    const high = config([experiment({ hash, coverage_percent: 20 })]);
    const before = users.map((u) => evaluate(low, 1, u, {}, NOW).variant);
    const after = users.map((u) => evaluate(high, 1, u, {}, NOW).variant);
    const kept = before.filter((v) => v !== null).length;
    assert.ok(before.every((v, i) => v === null || v === after[i]), hash);
    assert.ok(kept > 200 && kept < 400, `${hash}: ${kept}`);
    assert.ok(after.filter((v) => v !== null).length > 500, hash);
  }
});

test("a layer shares its users out", () => {
  const ranges = [[0, 2500], [2500, 7000], [7000, 10000]];
  const cfg = config(ranges.map((range, i) => experiment({ id: i, salt: `e${i}`, layer: { key: "k", range } })),
    [{ key: "k", salt: "k-salt" }]);
  const counts = [0, 0, 0];
  for (const u of users) {
    const reasons = [0, 1, 2].map((i) => evaluate(cfg, i, u, {}, NOW).reason);
    assert.deepEqual([...reasons].sort(), ["assigned", "not_in_layer", "not_in_layer"], u);
    counts[reasons.indexOf("assigned")]++;
  }
  ranges.forEach(([s, e], i) => assert.ok(Math.abs(counts[i] - (3000 * (e - s)) / 10000) < 150, `${counts}`));
});

test("instants are exact", () => {
  assert.equal(instant("2026-12-01T01:00:00+01:00"), instant(NOW));
  assert.equal(instant("1970-01-01T00:00:00.000000001Z"), 1n);
  assert.equal(instant("1969-12-31T23:59:59Z"), -1000000000n);
  assert.equal(instant(new Date(Date.UTC(2026, 11, 1))), instant(NOW));
  for (const bad of ["2026-02-29T00:00:00Z", "2026-12-01", "2026-12-01T00:00:00", "2026-12-01T24:00:00Z", null]) {
    assert.throws(() => instant(bad), RangeError, String(bad));
  }
});

test("numbers as text, versions, code point order", () => {
  assert.deepEqual([1.0, -12.5, 1e21, 123e-9, 5e-324].map(text), ["1", "-12.5", "1e+21", "1.23e-7", "5e-324"]);
  assert.equal(paddedVersion("v1.2.3+b"), "    1-    2-    3-~");
  assert.equal(paddedVersion("1.0.0-rc.12"), "    1-    0-    0-rc-   12");
  assert.equal(compareCodePoints("\uff21", "😀"), -1);
  assert.equal("\uff21" < "😀", false, "UTF-16 order differs, hence compareCodePoints");
});

test("an unknown experiment or hash throws", () => {
  assert.throws(() => evaluate(config([experiment()]), 2, "u", {}, NOW), /not in the configuration/);
  assert.throws(() => evaluate(config([experiment({ hash: "md5" })]), 1, "u", {}, NOW), /unknown hash/);
});
