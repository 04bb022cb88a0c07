// Every vector of clients/vectors.json, with the JavaScript evaluator.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { bucket, coverageBucket, gbV2, evaluate, matches, validateCondition } from "../abtest-eval.js";

const VECTORS = JSON.parse(readFileSync(new URL("../../vectors.json", import.meta.url), "utf8"));
const HASHES = {
  bucket: (v) => bucket(v.salt, v.id),
  coverage_bucket: (v) => coverageBucket(v.salt, v.id),
  gb_v2: (v) => gbV2(v.seed, v.id),
};

test("the file has every section", () => {
  assert.equal(VECTORS.version, 1);
  for (const [section, atLeast] of [["hash", 50], ["conditions", 150], ["evaluations", 200], ["validations", 30]]) {
    assert.ok(VECTORS[section].length >= atLeast, section);
  }
});

test("hash vectors", () => {
  for (const v of VECTORS.hash) assert.equal(HASHES[v.kind](v), v.expected, JSON.stringify(v));
});

test("condition vectors", () => {
  for (const v of VECTORS.conditions) assert.equal(matches(v.condition, v.attributes), v.expected, v.name);
});

test("evaluation vectors", () => {
  for (const v of VECTORS.evaluations) {
    assert.deepEqual(evaluate(v.config, v.experiment_id, v.user_id, v.attributes, v.now), v.expected, v.name);
  }
});

test("validation vectors", () => {
  for (const v of VECTORS.validations) {
    assert.deepEqual(validateCondition(v.condition).map((p) => p.path), v.expected, v.name);
  }
});
