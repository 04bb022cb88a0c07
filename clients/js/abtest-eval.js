// Reference evaluator of docs/assignment.md: which variant a user gets, computed locally.
// No dependencies; Node 20 and browsers (ES modules). Gives every user the same variant as the
// api would on its first assignment of that user (the api then remembers it; this has no memory):
//
//   import { evaluate } from "./abtest-eval.js";
//   evaluate(config, 7, "user-42", { country: "FR" }, "2026-12-01T00:00:00Z");
//   // -> { variant: "blue_button", reason: "assigned" }

import { sha256 } from "./sha256.js";
import { matches } from "./conditions.js";

export { matches, validateCondition } from "./conditions.js";
export { sha256, sha256Pure, sha256Node } from "./sha256.js";

export const BASIS_POINTS = 10000;
const RFC3339 = /^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))$/;
const utf8 = new TextEncoder();

/** `bucket` with a given SHA-256 function (bytes -> 32 bytes). */
export function bucketWith(digest, salt, userId) {
  const hash = digest(utf8.encode(`${salt}:${userId}`));
  const first8 = new DataView(hash.buffer, hash.byteOffset, 8).getBigUint64(0);
  return Number(first8 % BigInt(BASIS_POINTS));
}

/** Hash `sha256`: first 8 bytes of sha256(salt + ":" + id), big-endian, modulo 10000. */
export const bucket = (salt, userId) => bucketWith(sha256, salt, userId);

/** bucket(salt + ":coverage", id): decides coverage independently of the variant. */
export const coverageBucket = (salt, userId) => bucket(`${salt}:coverage`, userId);

/** 32-bit FNV-1a over the UTF-16 code units of `s`. */
export function fnv32a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** GrowthBook's version 2 hash, a number in [0, 1) with 4 decimals. */
export const gbV2 = (seed, userId) => (fnv32a(String(fnv32a(seed + userId))) % 10000) / 10000;

/** GrowthBook's version 1 hash (id before seed, 3 decimals); not used by the api. */
export const gbV1 = (seed, userId) => (fnv32a(userId + seed) % 1000) / 1000;

/** round(percent x 100), halves up (no tie arises with at most two decimals). */
export const basisPoints = (percent) => Math.round(percent * 100);

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
function daysFromCivil(y, m, d) {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  return era * 146097 + yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy - 719468;
}

function daysInMonth(y, m) {
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1];
}

/** Nanoseconds (BigInt) since 1970-01-01T00:00:00Z of an RFC 3339 string or a Date
 * (fractions beyond nanoseconds are dropped): exact, so comparisons never round. */
export function instant(value) {
  if (value instanceof Date) return BigInt(value.getTime()) * 1000000n;
  const m = typeof value === "string" ? RFC3339.exec(value) : null;
  const [y, mo, d, h, mi, s] = m ? m.slice(1, 7).map(Number) : [];
  const [oh, om] = m ? [Number(m[9] ?? 0), Number(m[10] ?? 0)] : [];
  if (!m || mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 60 || oh > 23 || om > 59) {
    throw new RangeError(`not an RFC 3339 date-time: ${JSON.stringify(value)}`);
  }
  const offset = (oh * 3600 + om * 60) * (m[8] === "-" ? -1 : 1);
  const seconds = daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset;
  return BigInt(seconds) * 1000000000n + BigInt((m[7] ?? "").padEnd(9, "0").slice(0, 9));
}

/** The experiment of `config` with that id, or undefined. */
export const findExperiment = (config, id) => (config.experiments ?? []).find((e) => e.id === id);

/** The variant of `userId` in experiment `experimentId` of `config` (the document of
 * GET /sdk/config): {variant: name or null, reason}, by the rules of the specification, in
 * order. `now`: RFC 3339 string or Date (default: the current time). Throws when the
 * experiment is not in the configuration. */
export function evaluate(config, experimentId, userId, attributes = {}, now = new Date()) {
  const experiment = findExperiment(config, experimentId);
  if (experiment === undefined) throw new Error(`experiment ${experimentId} is not in the configuration`);
  return evaluateOne(config, experiment, userId, attributes ?? {}, instant(now), false);
}

const answer = (variant, reason) => ({ variant, reason });

function evaluateOne(config, experiment, userId, attributes, at, asHoldout) {
  const forced = experiment.forced ?? {};
  if (Object.prototype.hasOwnProperty.call(forced, userId) && experiment.status !== "stopped") {
    return answer(forced[userId], "forced");
  }
  if (experiment.status !== "running") return answer(null, "not_running");
  if (experiment.start_at != null && at < instant(experiment.start_at)) return answer(null, "not_started");
  if (experiment.stop_at != null && at >= instant(experiment.stop_at)) return answer(null, "ended");
  if (!(asHoldout || experiment.holdout) && heldOut(config, experiment, userId, attributes, at)) {
    return answer(null, "holdout");
  }
  if (!inLayer(config, experiment.layer, userId)) return answer(null, "not_in_layer");
  const conditions = experiment.conditions;
  if (conditions != null && !matches(conditions, attributes)) return answer(null, "not_targeted");
  const variant = pick(experiment, userId);
  return answer(variant, variant !== null ? "assigned" : "not_in_traffic");
}

/** Rule 4: some holdout that applies to `experiment` puts the user in its `holdout` variant.
 * A holdout whose experiment is not in the configuration holds nobody out. */
function heldOut(config, experiment, userId, attributes, at) {
  const layerKey = experiment.layer?.key;
  return (config.holdouts ?? []).some((holdout) => {
    if (holdout.layer != null && holdout.layer !== layerKey) return false;
    const h = findExperiment(config, holdout.experiment_id);
    return h !== undefined && evaluateOne(config, h, userId, attributes, at, true).variant === "holdout";
  });
}

/** Rule 5; a layer key missing from `layers` admits nobody. */
function inLayer(config, layer, userId) {
  if (layer == null) return true;
  const salt = (config.layers ?? []).find((l) => l.key === layer.key)?.salt;
  if (salt == null) return false;
  const [start, end] = layer.range;
  const b = bucket(salt, userId);
  return start <= b && b < end;
}

/** Rule 7: the variant's name, or null when the user is not in the traffic. */
function pick(experiment, userId) {
  const kind = experiment.hash ?? "sha256";
  const coverage = experiment.coverage_percent ?? 100;
  if (kind === "sha256") {
    if (coverageBucket(experiment.salt, userId) >= basisPoints(coverage)) return null;
    const b = bucket(experiment.salt, userId);
    let upper = 0;
    for (const v of experiment.variants) {
      upper += basisPoints(v.allocation_percent);
      if (b < upper) return v.name;
    }
    return null;
  }
  if (kind === "growthbook_v2") {
    const n = gbV2(experiment.seed ?? experiment.salt, userId);
    const c = coverage / 100;
    let s = 0;
    for (const v of experiment.variants) {
      const w = v.allocation_percent / 100;
      if (s <= n && n < s + c * w) return v.name;
      s += w;
    }
    return null;
  }
  throw new Error(`unknown hash ${JSON.stringify(kind)}`);
}

/** Keeps the configuration of GET /sdk/config (API key as `Authorization: Bearer`) and
 * evaluates locally. `refresh()` downloads it again with the last ETag as If-None-Match, so
 * an unchanged configuration costs a 304 and no body. */
export class Client {
  constructor(baseUrl, apiKey, { fetch: fetchImpl = globalThis.fetch } = {}) {
    this.url = `${baseUrl.replace(/\/+$/, "")}/sdk/config`;
    this.apiKey = apiKey;
    this.fetch = fetchImpl;
    this.config = null;
    this.etag = null;
  }

  /** Downloads the configuration; true when a new one was taken, false on 304. */
  async refresh() {
    const headers = { Authorization: `Bearer ${this.apiKey}`, Accept: "application/json" };
    if (this.config !== null && this.etag) headers["If-None-Match"] = this.etag;
    const response = await this.fetch(this.url, { headers });
    if (response.status === 304 && this.config !== null) return false;
    if (!response.ok) throw new Error(`GET ${this.url}: HTTP ${response.status}`);
    const config = await response.json();
    if (config.version !== 1) throw new Error(`configuration version ${config.version}, this client knows 1`);
    this.config = config;
    this.etag = response.headers.get("ETag");
    return true;
  }

  /** evaluate() on the configuration held (call refresh() first). */
  evaluate(experimentId, userId, attributes = {}, now = new Date()) {
    if (this.config === null) throw new Error("no configuration yet: await refresh() first");
    return evaluate(this.config, experimentId, userId, attributes, now);
  }
}
