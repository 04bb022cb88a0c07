//! Targeting conditions (`docs/assignment.md`, "Conditions"): parsed and checked once, when
//! an experiment is created or changed (a 400 naming the part otherwise), then matched
//! against the attributes an assignment request carries.

use std::collections::BTreeMap;

use serde_json::Value;

use super::experiment::Violation;

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 10;
/// Largest condition, as JSON text.
pub const MAX_BYTES: usize = 4096;
/// Longest `$regex` pattern.
pub const MAX_PATTERN_CHARS: usize = 256;

/// An attribute of the user, as an assignment request sends it.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Text(String),
    Number(f64),
    Bool(bool),
}

pub type Attributes = BTreeMap<String, Attr>;

impl Attr {
    /// The attribute of a JSON value; `None` for arrays, objects and null.
    pub fn from_json(v: &Value) -> Option<Attr> {
        match v {
            Value::String(s) => Some(Attr::Text(s.clone())),
            Value::Number(n) => n.as_f64().map(Attr::Number),
            Value::Bool(b) => Some(Attr::Bool(*b)),
            _ => None,
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Attr::Number(n) => Some(*n),
            Attr::Text(s) => parse_number(s),
            Attr::Bool(_) => None,
        }
    }

    pub(crate) fn text(&self) -> String {
        match self {
            Attr::Text(s) => s.clone(),
            Attr::Number(n) => number_text(*n),
            Attr::Bool(b) => b.to_string(),
        }
    }
}

/// A number as text, as ECMAScript's `Number::toString` writes it (every evaluator agrees):
/// the shortest digits that read back the same, `30` not `30.0`, `1e+21`, `1.5e-7`, `-0` as `0`.
pub fn number_text(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 { "0".to_owned() } else { x.to_string() };
    }
    let scientific = format!("{:e}", x.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits = mantissa.replace('.', "");
    let (k, n) = (digits.len() as i32, exponent.parse::<i32>().unwrap_or(0) + 1);
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let (first, rest) = digits.split_at(1);
        let sign = if n >= 1 { "+" } else { "-" };
        format!("{first}{}{}e{sign}{}", if rest.is_empty() { "" } else { "." }, rest, (n - 1).abs())
    };
    if x < 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

/// Text that reads as a finite decimal number, exactly
/// `^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`: no blanks, `0x`, `_` or `inf`.
fn parse_number(s: &str) -> Option<f64> {
    let b = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let int = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac;
    }
    if int + frac == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return None;
        }
        i += exp;
    }
    (i == b.len()).then(|| s.parse::<f64>().ok()).flatten().filter(|n| n.is_finite())
}

#[derive(Debug, Clone)]
enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
}

impl Literal {
    fn equals(&self, a: &Attr) -> bool {
        match self {
            Literal::Number(n) => a.number() == Some(*n),
            Literal::Text(s) => a.text() == *s,
            Literal::Bool(b) => a.text() == b.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Eq(Literal),
    Ne(Literal),
    In(Vec<Literal>),
    Nin(Vec<Literal>),
    Compare(std::cmp::Ordering, bool, f64),
    Version(std::cmp::Ordering, bool, String),
    Regex(regex::Regex),
    Exists(bool),
}

/// A checked condition.
#[derive(Debug, Clone)]
pub struct Condition(Node);

#[derive(Debug, Clone)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Attribute { name: String, ops: Vec<Op> },
}

fn bad(path: &str, message: impl Into<String>) -> Violation {
    Violation { field: path.to_owned(), message: message.into() }
}

impl Condition {
    /// Parses and checks `value` (the field is named `path` in errors, e.g. `conditions`).
    pub fn parse(value: &Value, path: &str) -> Result<Condition, Violation> {
        if value.to_string().len() > MAX_BYTES {
            return Err(bad(path, format!("conditions are at most {MAX_BYTES} bytes of JSON")));
        }
        parse_object(value, path, 1).map(Condition)
    }

    pub fn matches(&self, attrs: &Attributes) -> bool {
        self.0.matches(attrs)
    }
}

impl Node {
    fn matches(&self, attrs: &Attributes) -> bool {
        match self {
            Node::All(all) => all.iter().all(|c| c.matches(attrs)),
            Node::Any(any) => any.iter().any(|c| c.matches(attrs)),
            Node::Not(c) => !c.matches(attrs),
            Node::Attribute { name, ops } => ops.iter().all(|op| op.holds(attrs.get(name))),
        }
    }
}

fn parse_object(value: &Value, path: &str, depth: usize) -> Result<Node, Violation> {
    if depth > MAX_DEPTH {
        return Err(bad(path, format!("conditions nest at most {MAX_DEPTH} levels")));
    }
    let Value::Object(map) = value else { return Err(bad(path, "a condition is a JSON object")) };
    let mut all = Vec::with_capacity(map.len());
    for (key, v) in map {
        let here = format!("{path}.{key}");
        all.push(match key.as_str() {
            "$and" | "$or" => {
                let Value::Array(items) = v else {
                    return Err(bad(&here, format!("{key} takes a list of conditions")));
                };
                let parsed = items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| parse_object(c, &format!("{here}[{i}]"), depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                if key == "$and" {
                    Node::All(parsed)
                } else {
                    Node::Any(parsed)
                }
            }
            "$not" => Node::Not(Box::new(parse_object(v, &here, depth + 1)?)),
            other if other.starts_with('$') => return Err(bad(&here, format!("unknown logical operator `{other}`"))),
            name => Node::Attribute { name: name.to_owned(), ops: parse_ops(v, &here)? },
        });
    }
    Ok(Node::All(all))
}

fn literal(v: &Value, path: &str) -> Result<Literal, Violation> {
    match v {
        Value::String(s) => Ok(Literal::Text(s.clone())),
        Value::Number(n) => n.as_f64().map(Literal::Number).ok_or_else(|| bad(path, "not a finite number")),
        Value::Bool(b) => Ok(Literal::Bool(*b)),
        _ => Err(bad(path, "a string, number or boolean")),
    }
}

fn parse_ops(v: &Value, path: &str) -> Result<Vec<Op>, Violation> {
    let Value::Object(ops) = v else { return Ok(vec![Op::Eq(literal(v, path)?)]) };
    if ops.is_empty() {
        return Err(bad(path, "an operator object holds at least one operator"));
    }
    ops.iter().map(|(op, arg)| parse_op(op, arg, &format!("{path}.{op}"))).collect()
}

fn parse_op(op: &str, arg: &Value, path: &str) -> Result<Op, Violation> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let number = || arg.as_f64().filter(|n| n.is_finite()).ok_or_else(|| bad(path, format!("{op} takes a number")));
    let text = || arg.as_str().map(str::to_owned).ok_or_else(|| bad(path, format!("{op} takes a string")));
    let list = || match arg {
        Value::Array(items) => items.iter().enumerate().map(|(i, v)| literal(v, &format!("{path}[{i}]"))).collect(),
        _ => Err(bad(path, format!("{op} takes a list"))),
    };
    Ok(match op {
        "$eq" => Op::Eq(literal(arg, path)?),
        "$ne" => Op::Ne(literal(arg, path)?),
        "$in" => Op::In(list()?),
        "$nin" => Op::Nin(list()?),
        "$gt" => Op::Compare(Greater, false, number()?),
        "$gte" => Op::Compare(Greater, true, number()?),
        "$lt" => Op::Compare(Less, false, number()?),
        "$lte" => Op::Compare(Less, true, number()?),
        "$vgt" => Op::Version(Greater, false, text()?),
        "$vgte" => Op::Version(Greater, true, text()?),
        "$vlt" => Op::Version(Less, false, text()?),
        "$vlte" => Op::Version(Less, true, text()?),
        "$veq" => Op::Version(Equal, true, text()?),
        "$vne" => Op::Version(Equal, false, text()?),
        "$regex" => Op::Regex(pattern(&text()?, path)?),
        "$exists" => Op::Exists(arg.as_bool().ok_or_else(|| bad(path, "$exists takes true or false"))?),
        other => return Err(bad(path, format!("unknown operator `{other}`"))),
    })
}

fn pattern(p: &str, path: &str) -> Result<regex::Regex, Violation> {
    if p.chars().count() > MAX_PATTERN_CHARS {
        return Err(bad(path, format!("patterns are at most {MAX_PATTERN_CHARS} characters")));
    }
    let rewritten = ascii_classes(p).map_err(|problem| bad(path, format!("not allowed in a pattern: {problem}")))?;
    regex::RegexBuilder::new(&rewritten)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| bad(path, format!("not a valid pattern: {}", e.to_string().lines().last().unwrap_or_default())))
}

/// The pattern with `\d \w \s \b` (and their negations) made ASCII, as in every evaluator;
/// refuses what RE2, Python or JavaScript lack: groups other than `(?:...)` (look-around,
/// names, flags), back-references and possessive quantifiers.
fn ascii_classes(p: &str) -> Result<String, &'static str> {
    let chars: Vec<char> = p.chars().collect();
    let (mut out, mut i, mut class_start) = (String::with_capacity(p.len() + 16), 0, None::<usize>);
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        if c == '\\' {
            let inside = class_start.is_some();
            out.push_str(&match (next, inside) {
                (Some('1'..='9' | 'k'), false) => return Err("a back-reference"),
                (Some(k @ ('d' | 'D' | 'w' | 'W' | 's' | 'S')), _) => {
                    let name = match k.to_ascii_lowercase() {
                        'd' => "digit",
                        'w' => "word",
                        _ => "space",
                    };
                    let negated = if k.is_ascii_uppercase() { "^" } else { "" };
                    let class = format!("[:{negated}{name}:]");
                    if inside {
                        class
                    } else {
                        format!("[{class}]")
                    }
                }
                (Some(k @ ('b' | 'B')), false) => format!("(?-u:\\{k})"),
                (Some(k), _) => format!("\\{k}"),
                (None, _) => "\\".to_owned(),
            });
            i += 2;
            continue;
        }
        match class_start {
            Some(start) if c == ']' && i > start => class_start = None,
            Some(_) => {}
            None if c == '[' => class_start = Some(i + 1 + usize::from(next == Some('^'))),
            None if c == '(' && next == Some('?') && chars.get(i + 2) != Some(&':') => {
                return Err("a group other than (?:...)")
            }
            None if matches!(c, '*' | '+' | '?' | '}') && next == Some('+') => return Err("a possessive quantifier"),
            None => {}
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

impl Op {
    fn holds(&self, attr: Option<&Attr>) -> bool {
        use std::cmp::Ordering::Equal;
        let Some(a) = attr else {
            return matches!(self, Op::Ne(_) | Op::Nin(_) | Op::Exists(false));
        };
        match self {
            Op::Eq(l) => l.equals(a),
            Op::Ne(l) => !l.equals(a),
            Op::In(ls) => ls.iter().any(|l| l.equals(a)),
            Op::Nin(ls) => !ls.iter().any(|l| l.equals(a)),
            Op::Compare(side, or_equal, n) => {
                a.number().and_then(|v| v.partial_cmp(n)).is_some_and(|o| o == *side || (*or_equal && o == Equal))
            }
            Op::Version(Equal, equal, v) => (padded_version(&a.text()) == padded_version(v)) == *equal,
            Op::Version(side, or_equal, v) => {
                let o = padded_version(&a.text()).cmp(&padded_version(v));
                o == *side || (*or_equal && o == Equal)
            }
            Op::Regex(r) => r.is_match(&a.text()),
            Op::Exists(e) => *e,
        }
    }
}

/// GrowthBook's `paddedVersionString`: comparable as plain strings.
pub fn padded_version(v: &str) -> String {
    let v = v.strip_prefix('v').unwrap_or(v);
    let v = v.split('+').next().unwrap_or_default();
    let mut parts: Vec<String> = v.split(['.', '-']).map(str::to_owned).collect();
    if parts.len() == 3 {
        parts.push("~".to_owned());
    }
    parts
        .iter()
        .map(|p| if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) { format!("{p:>5}") } else { p.clone() })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attrs(v: Value) -> Attributes {
        v.as_object().expect("object").iter().filter_map(|(k, v)| Some((k.clone(), Attr::from_json(v)?))).collect()
    }

    fn holds(c: Value, a: Value) -> bool {
        Condition::parse(&c, "conditions").expect("valid").matches(&attrs(a))
    }

    #[test]
    fn operators_hold_as_documented() {
        assert!(holds(json!({}), json!({})));
        assert!(holds(json!({"country": "DE"}), json!({"country": "DE"})));
        assert!(!holds(json!({"country": "DE"}), json!({})));
        assert!(holds(json!({"age": 30}), json!({"age": "30"})), "a numeric string equals the number");
        assert!(holds(json!({"age": {"$gte": 18, "$lt": 65}}), json!({"age": "30"})));
        assert!(!holds(json!({"age": {"$gt": -10}}), json!({})), "missing is not a number");
        assert!(holds(json!({"country": {"$nin": ["DE"]}}), json!({})));
        assert!(holds(json!({"beta": true}), json!({"beta": "true"})));
        assert!(holds(json!({"v": {"$vgt": "1.2.3"}}), json!({"v": "1.10.0"})));
        assert!(holds(json!({"v": {"$vlt": "1.0.0"}}), json!({"v": "v1.0.0-beta+7"})));
        assert!(holds(json!({"platform": {"$regex": "^ios"}}), json!({"platform": "ios-17"})));
        assert!(!holds(json!({"$or": []}), json!({})));
        assert!(holds(json!({"$not": {"country": "DE"}}), json!({"country": "AT"})));
        assert!(holds(json!({"$and": [{"a": 1}, {"$or": [{"b": "x"}, {"c": {"$exists": false}}]}]}), json!({"a": 1})));
    }

    #[test]
    fn numbers_read_and_print_as_in_ecmascript() {
        let cases =
            [(30.0, "30"), (1e21, "1e+21"), (1.5e-7, "1.5e-7"), (-0.0, "0"), (0.1, "0.1"), (123.456, "123.456")];
        for (n, text) in cases {
            assert_eq!(number_text(n), text);
        }
        assert_eq!(number_text(1e20), "100000000000000000000");
        assert_eq!(number_text(-2.5e-6), "0.0000025".replace("0.", "-0."));
        assert_eq!(parse_number("1e3"), Some(1000.0));
        assert_eq!(parse_number(".5"), Some(0.5));
        for bad in ["", " 1", "1 ", "0x10", "1_000", "inf", "NaN", "1e", "+", "."] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bad_conditions_name_the_part() {
        let field = |c: Value| Condition::parse(&c, "conditions").expect_err("invalid").field;
        assert_eq!(field(json!({"$or": [{"a": 1}, {"country": {"$foo": 1}}]})), "conditions.$or[1].country.$foo");
        assert_eq!(field(json!({"a": {"$regex": "("}})), "conditions.a.$regex");
        assert_eq!(field(json!({"a": {"$regex": "x".repeat(257)}})), "conditions.a.$regex");
        assert_eq!(field(json!({"a": {"$in": "DE"}})), "conditions.a.$in");
        assert_eq!(field(json!({"a": {"$gt": "x"}})), "conditions.a.$gt");
        assert_eq!(field(json!({"a": [1]})), "conditions.a");
        assert_eq!(field(json!({"$xor": []})), "conditions.$xor");
        let deep = (0..11).fold(json!({"a": 1}), |c, _| json!({"$not": c}));
        assert!(field(deep).starts_with("conditions.$not"));
    }
}
