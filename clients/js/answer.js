// Answers vectors with this evaluator, for clients/make_vectors.py's cross-check: reads
// {hash, conditions, evaluations, validations} (without "expected") as JSON on stdin and writes
// the answers, section by section and in order, as JSON on stdout.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { bucket, coverageBucket, gbV2, evaluate, matches, validateCondition } from "./abtest-eval.js";

const HASHES = {
  bucket: (v) => bucket(v.salt, v.id),
  coverage_bucket: (v) => coverageBucket(v.salt, v.id),
  gb_v2: (v) => gbV2(v.seed, v.id),
};

/** The answer of this evaluator to every vector of `vectors`, section by section. */
export function answer(vectors) {
  return {
    hash: (vectors.hash ?? []).map((v) => HASHES[v.kind](v)),
    conditions: (vectors.conditions ?? []).map((v) => matches(v.condition, v.attributes)),
    evaluations: (vectors.evaluations ?? []).map((v) =>
      evaluate(v.config, v.experiment_id, v.user_id, v.attributes, v.now)),
    validations: (vectors.validations ?? []).map((v) => validateCondition(v.condition).map((p) => p.path)),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(JSON.stringify(answer(JSON.parse(readFileSync(0, "utf8")))));
}
