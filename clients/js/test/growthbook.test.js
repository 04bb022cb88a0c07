// GrowthBook's own `hash` cases (crate growthbook-rust 0.4.0, sha256-pinned), fetched at test
// time by clients/growthbook_cases.py: gbV2 and gbV1 give their expected values. A failed
// download fails the test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { gbV1, gbV2 } from "../abtest-eval.js";

function hashCases() {
  const script = fileURLToPath(new URL("../../growthbook_cases.py", import.meta.url));
  const run = spawnSync("python3", [script], { encoding: "utf8", timeout: 120000 });
  assert.equal(run.status, 0, `GrowthBook's hash cases are unavailable: ${run.error ?? ""}${run.stderr}`);
  return JSON.parse(run.stdout);
}

const cases = hashCases();

for (const [version, hash] of [[2, gbV2], [1, gbV1]]) {
  test(`GrowthBook hash cases, version ${version}`, (t) => {
    const mine = cases.filter((c) => c[2] === version);
    assert.ok(mine.length > 5, `version ${version} cases`);
    for (const [seed, id, , expected] of mine) assert.equal(hash(seed, id), expected, JSON.stringify([seed, id]));
    t.diagnostic(`${mine.length} passed`);
  });
}
