// Targeting conditions of docs/assignment.md ("Conditions"): matches and validateCondition.
// An attribute is present when its value is a string, a number or a boolean; null, arrays and
// objects count as absent. Open details of the specification: see clients/README.md.

// A finite decimal number as text (what Rust's f64 parser, Python's float() and Number() all
// accept, without blanks, underscores, hexadecimal, "inf" or "nan").
const NUMBER = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const DIGITS = /^[0-9]+$/;
const COMPARE = { $gt: (x, y) => x > y, $gte: (x, y) => x >= y, $lt: (x, y) => x < y, $lte: (x, y) => x <= y };
const VERSION = {
  $vgt: (c) => c > 0, $vgte: (c) => c >= 0, $vlt: (c) => c < 0, $vlte: (c) => c <= 0,
  $veq: (c) => c === 0, $vne: (c) => c !== 0,
};
export const MAX_PATTERN_CHARS = 256;
export const MAX_LEVELS = 10;
export const MAX_BYTES = 4096;
const NOT_LITERAL = "not a string, number or boolean";
const has = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

const isNumber = (v) => typeof v === "number";
const isLiteral = (v) => typeof v === "string" || typeof v === "boolean" || (isNumber(v) && Number.isFinite(v));
const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

/** `value` as a finite number: numbers, and strings that parse as a finite decimal; else null. */
export function toNumber(value) {
  if (typeof value === "string" && NUMBER.test(value)) value = Number(value);
  return isNumber(value) && Number.isFinite(value) ? value : null;
}

/** An attribute or literal as text: strings as they are, true/false, numbers as String(). */
export const text = (value) => (typeof value === "string" ? value : String(value));

/** Equality of the specification: numerically when the literal is a number, else as text. */
export function equal(actual, literal) {
  if (isNumber(literal)) {
    const x = toNumber(actual);
    return x !== null && x === literal;
  }
  return text(actual) === text(literal);
}

/** Strings compared by code point (= UTF-8 byte order), not by UTF-16 unit: -1, 0 or 1. */
export function compareCodePoints(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  return Math.sign(x.length - y.length);
}

/** GrowthBook's paddedVersionString: comparable as a plain string. */
export function paddedVersion(version) {
  if (version.startsWith("v")) version = version.slice(1);
  const plus = version.indexOf("+");
  const parts = (plus >= 0 ? version.slice(0, plus) : version).split(/[.-]/);
  if (parts.length === 3) parts.push("~");
  return parts.map((p) => (DIGITS.test(p) ? p.padStart(5, " ") : p)).join("-");
}

/** [JavaScript form, problem]: outside classes `.` becomes [^\n] and \s, \S ASCII classes (as in
 * RE2 and Python); groups other than (?:...), back-references and possessive quantifiers,
 * which RE2 or JavaScript lack, are problems. */
function rewritePattern(pattern) {
  const out = [];
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    const next = pattern[i + 1] ?? "";
    if (ch === "\\") {
      if (!inClass && next !== "" && "123456789k".includes(next)) return [null, "back-reference"];
      out.push(inClass ? ch + next : { s: "[\\t\\n\\v\\f\\r ]", S: "[^\\t\\n\\v\\f\\r ]" }[next] ?? ch + next);
      i++;
      continue;
    }
    if (inClass) inClass = ch !== "]";
    else if (ch === "[") inClass = true;
    else if (ch === "(" && next === "?" && pattern[i + 2] !== ":") return [null, "a group other than (?:...)"];
    else if ("*+?}".includes(ch) && next === "+") return [null, "possessive quantifier"];
    out.push(!inClass && ch === "." ? "[^\\n]" : ch);
  }
  return [out.join(""), null];
}

const compiledPatterns = new Map();

/** [RegExp or null, problem or null] of a $regex argument; by code point (flag u) when the
 * pattern allows it, else without u (patterns such as `\_` that only the u flag refuses). */
function compiled(pattern) {
  if (compiledPatterns.has(pattern)) return compiledPatterns.get(pattern);
  const [rewritten, problem] = rewritePattern(pattern);
  const tooLong = Array.from(pattern).length > MAX_PATTERN_CHARS;
  const result = tooLong ? [null, `longer than ${MAX_PATTERN_CHARS} characters`]
    : problem ? [null, problem] : compile(rewritten);
  if (compiledPatterns.size < 512) compiledPatterns.set(pattern, result);
  return result;
}

function compile(source) {
  try {
    return [new RegExp(source, "u"), null];
  } catch {
    try {
      return [new RegExp(source), null];
    } catch (e) {
      return [null, `does not compile: ${e.message}`];
    }
  }
}

/** Why `pattern` is not a valid $regex argument, or null. */
export const patternProblem = (pattern) => (typeof pattern === "string" ? compiled(pattern)[1] : "not a string");

/** The value of a present attribute, or null when it is absent. */
export function attribute(attributes, name) {
  const value = isObject(attributes) && has(attributes, name) ? attributes[name] : null;
  return ["string", "number", "boolean"].includes(typeof value) ? value : null;
}

/** True when `condition` (an object) holds for `attributes` (top-level names). Invalid parts
 * (unknown operators, arguments of the wrong type) never hold. */
export function matches(condition, attributes) {
  return isObject(condition) && Object.entries(condition).every(([k, v]) => keyHolds(k, v, attributes));
}

function keyHolds(key, value, attributes) {
  if (key === "$and") return Array.isArray(value) && value.every((c) => matches(c, attributes));
  if (key === "$or") return Array.isArray(value) && value.some((c) => matches(c, attributes));
  if (key === "$not") return isObject(value) && !matches(value, attributes);
  if (key.startsWith("$")) return false;
  const actual = attribute(attributes, key);
  if (isLiteral(value)) return actual !== null && equal(actual, value);
  const operators = isObject(value) ? Object.entries(value) : [];
  return operators.length > 0 && operators.every(([op, arg]) => operatorHolds(op, arg, actual));
}

function operatorHolds(op, arg, actual) {
  const present = actual !== null;
  if (op === "$eq" || op === "$ne") return isLiteral(arg) && (present && equal(actual, arg)) === (op === "$eq");
  if (op === "$in" || op === "$nin") {
    if (!Array.isArray(arg) || !arg.every(isLiteral)) return false;
    return (present && arg.some((x) => equal(actual, x))) === (op === "$in");
  }
  if (has(COMPARE, op)) {
    const [x, y] = [toNumber(actual), isNumber(arg) ? toNumber(arg) : null];
    return x !== null && y !== null && COMPARE[op](x, y);
  }
  if (has(VERSION, op)) {
    if (typeof arg !== "string" || !present) return false;
    return VERSION[op](compareCodePoints(paddedVersion(text(actual)), paddedVersion(arg)));
  }
  if (op === "$regex") {
    const regex = typeof arg === "string" ? compiled(arg)[0] : null;
    return regex !== null && present && regex.test(text(actual));
  }
  if (op === "$exists") return typeof arg === "boolean" && present === arg;
  return false;
}

/** The problems of `condition` as {path, message} in document order; [] when it is valid.
 * Paths look like `conditions.$or[1].country.$regex`. */
export function validateCondition(condition, path = "conditions") {
  const problems = [];
  checkCondition(condition, path, 1, problems);
  let json = "";
  try {
    json = JSON.stringify(condition) ?? "";
  } catch {
    json = "";
  }
  if (new TextEncoder().encode(json).length > MAX_BYTES) problems.push({ path, message: `more than ${MAX_BYTES} bytes` });
  return problems;
}

function checkCondition(condition, path, level, problems) {
  if (!isObject(condition)) return problems.push({ path, message: "not an object" });
  if (level > MAX_LEVELS) return problems.push({ path, message: `more than ${MAX_LEVELS} levels` });
  for (const [key, value] of Object.entries(condition)) {
    const here = `${path}.${key}`;
    if (key === "$and" || key === "$or") {
      if (!Array.isArray(value)) problems.push({ path: here, message: "not a list" });
      else value.forEach((c, i) => checkCondition(c, `${here}[${i}]`, level + 1, problems));
    } else if (key === "$not") checkCondition(value, here, level + 1, problems);
    else if (key.startsWith("$")) problems.push({ path: here, message: "unknown operator" });
    else if (!isLiteral(value)) checkOperators(value, here, problems);
  }
}

function checkOperators(value, path, problems) {
  if (!isObject(value) || Object.keys(value).length === 0) {
    return problems.push({ path, message: "not a literal or an object of operators" });
  }
  for (const [op, arg] of Object.entries(value)) {
    const here = `${path}.${op}`;
    if ((op === "$in" || op === "$nin") && Array.isArray(arg)) {
      arg.forEach((x, i) => isLiteral(x) || problems.push({ path: `${here}[${i}]`, message: NOT_LITERAL }));
      continue;
    }
    const message = argumentProblem(op, arg);
    if (message) problems.push({ path: here, message });
  }
}

function argumentProblem(op, arg) {
  if (op === "$eq" || op === "$ne") return isLiteral(arg) ? null : NOT_LITERAL;
  if (op === "$in" || op === "$nin") return "not a list";
  if (has(COMPARE, op)) return isNumber(arg) && Number.isFinite(arg) ? null : "not a number";
  if (has(VERSION, op)) return typeof arg === "string" ? null : "not a string";
  if (op === "$regex") return patternProblem(arg);
  if (op === "$exists") return typeof arg === "boolean" ? null : "not a boolean";
  return "unknown operator";
}
