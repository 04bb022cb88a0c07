"""Hand-written condition scenarios of clients/vectors.json, each with its expected answer
written by hand from docs/assignment.md (make_vectors.py checks the evaluators agree)."""

FR = {"country": "FR"}
MISSING = {}


def c(name, condition, attributes, expected):
    return {"name": name, "condition": condition, "attributes": attributes, "expected": expected}


LITERALS = [
    c("literal: equal string", FR, {"country": "FR"}, True),
    c("literal: case matters", FR, {"country": "fr"}, False),
    c("literal: missing attribute", FR, MISSING, False),
    c("literal: null attribute counts as missing", FR, {"country": None}, False),
    c("literal: list attribute counts as missing", FR, {"country": ["FR"]}, False),
    c("literal: empty string equals empty string", {"ref": ""}, {"ref": ""}, True),
    c("literal string vs number attribute, as text", {"age": "30"}, {"age": 30}, True),
    c("literal string vs number 30.0, text 30", {"age": "30"}, {"age": 30.0}, True),
    c("literal string 1.50 vs number 1.5 (text 1.5)", {"x": "1.50"}, {"x": 1.5}, False),
    c("literal string vs number: shortest form 0.30000000000000004", {"x": "0.30000000000000004"}, {"x": 0.1 + 0.2}, True),
    c("literal string vs number: 1e+21", {"x": "1e+21"}, {"x": 1e21}, True),
    c("literal string vs number: 1e21 written plainly is not its text", {"x": "1000000000000000000000"}, {"x": 1e21}, False),
    c("literal string vs number: 1e20 is written plainly", {"x": "100000000000000000000"}, {"x": 1e20}, True),
    c("literal string vs number: 1.5e-7", {"x": "1.5e-7"}, {"x": 1.5e-7}, True),
    c("literal string vs number: 0.000001 is written plainly", {"x": "0.000001"}, {"x": 1e-6}, True),
    c("literal string vs number: -0 is 0", {"x": "0"}, {"x": -0.0}, True),
    c("literal string vs boolean attribute, as text", {"beta": "true"}, {"beta": True}, True),
    c("literal true vs string true (query string)", {"beta": True}, {"beta": "true"}, True),
    c("literal true vs string True", {"beta": True}, {"beta": "True"}, False),
    c("literal false vs boolean false", {"beta": False}, {"beta": False}, True),
    c("literal false vs boolean true", {"beta": False}, {"beta": True}, False),
    c("literal true vs number 1", {"beta": True}, {"beta": 1}, False),
    c("literal number vs number", {"age": 30}, {"age": 30}, True),
    c("literal number vs other number", {"age": 30}, {"age": 30.5}, False),
    c("literal number vs numeric string", {"age": 30}, {"age": "30"}, True),
    c("literal number vs numeric string 30.0", {"age": 30}, {"age": "30.0"}, True),
    c("literal number vs numeric string 3e1", {"age": 30}, {"age": "3e1"}, True),
    c("literal number vs numeric string +30", {"age": 30}, {"age": "+30"}, True),
    c("literal number vs numeric string .5", {"x": 0.5}, {"x": ".5"}, True),
    c("literal number vs numeric string 5.", {"x": 5}, {"x": "5."}, True),
    c("literal number vs numeric string -0", {"x": 0}, {"x": "-0"}, True),
    c("literal number vs numeric string 007", {"x": 7}, {"x": "007"}, True),
    c("literal number vs string with a leading blank", {"age": 30}, {"age": " 30"}, False),
    c("literal number vs string with a trailing blank", {"age": 30}, {"age": "30 "}, False),
    c("literal number vs hexadecimal string", {"age": 30}, {"age": "0x1E"}, False),
    c("literal number vs string with underscore", {"x": 1000}, {"x": "1_000"}, False),
    c("literal 0 vs empty string", {"x": 0}, {"x": ""}, False),
    c("literal number vs string Infinity", {"x": 1}, {"x": "Infinity"}, False),
    c("literal number vs string 1e400 (not finite)", {"x": 1}, {"x": "1e400"}, False),
    c("literal number vs text", {"age": 30}, {"age": "thirty"}, False),
    c("literal number vs boolean", {"x": 1}, {"x": True}, False),
    c("non-ASCII literal", {"city": "Zürich"}, {"city": "Zürich"}, True),
    c("emoji literal", {"mood": "😀"}, {"mood": "😀"}, True),
    c("prototype name is not an attribute", {"toString": {"$exists": True}}, MISSING, False),
    c("constructor is absent unless sent", {"constructor": {"$exists": False}}, MISSING, True),
    c("attribute named __proto__", {"__proto__": "x"}, {"__proto__": "x"}, True),
]

EQUALITY = [
    c("$eq: present", {"country": {"$eq": "FR"}}, FR, True),
    c("$eq: missing", {"country": {"$eq": "FR"}}, MISSING, False),
    c("$eq: number vs numeric string", {"n": {"$eq": 2}}, {"n": "2.0"}, True),
    c("$eq: true vs string true", {"b": {"$eq": True}}, {"b": "true"}, True),
    c("$ne: different", {"country": {"$ne": "FR"}}, {"country": "DE"}, True),
    c("$ne: equal", {"country": {"$ne": "FR"}}, FR, False),
    c("$ne: missing is true", {"country": {"$ne": "FR"}}, MISSING, True),
    c("$ne: number vs equal numeric string", {"age": {"$ne": 30}}, {"age": "30"}, False),
    c("$ne: number vs other numeric string", {"age": {"$ne": 30}}, {"age": "31"}, True),
    c("$ne: number vs text", {"age": {"$ne": 30}}, {"age": "abc"}, True),
    c("$ne: boolean attribute vs string", {"b": {"$ne": "false"}}, {"b": False}, False),
    c("$in: one of them", {"country": {"$in": ["FR", "DE"]}}, {"country": "DE"}, True),
    c("$in: none of them", {"country": {"$in": ["FR", "DE"]}}, {"country": "IT"}, False),
    c("$in: missing", {"country": {"$in": ["FR", "DE"]}}, MISSING, False),
    c("$in: empty list", {"country": {"$in": []}}, FR, False),
    c("$in: numbers vs numeric string", {"n": {"$in": [1, 2, 3]}}, {"n": "2"}, True),
    c("$in: numbers vs number 2.0", {"n": {"$in": [1, 2, 3]}}, {"n": 2.0}, True),
    c("$in: numbers vs text", {"n": {"$in": [1, 2, 3]}}, {"n": "two"}, False),
    c("$in: mixed literals vs boolean", {"b": {"$in": ["true", 1]}}, {"b": True}, True),
    c("$in: mixed literals vs number 1", {"b": {"$in": ["true", 1]}}, {"b": 1}, True),
    c("$nin: none of them", {"country": {"$nin": ["FR"]}}, {"country": "DE"}, True),
    c("$nin: one of them", {"country": {"$nin": ["FR"]}}, FR, False),
    c("$nin: missing is true", {"country": {"$nin": ["FR"]}}, MISSING, True),
    c("$nin: empty list, present", {"country": {"$nin": []}}, FR, True),
    c("$nin: empty list, missing", {"country": {"$nin": []}}, MISSING, True),
    c("$nin: numbers vs numeric string", {"n": {"$nin": [1, 2]}}, {"n": "1"}, False),
]

NUMBERS = [
    c("$gt: greater", {"age": {"$gt": 18}}, {"age": 30}, True),
    c("$gt: equal", {"age": {"$gt": 30}}, {"age": 30}, False),
    c("$gte: equal", {"age": {"$gte": 30}}, {"age": 30}, True),
    c("$lt: equal", {"age": {"$lt": 30}}, {"age": 30}, False),
    c("$lte: equal", {"age": {"$lte": 30}}, {"age": 30}, True),
    c("$lt: less", {"age": {"$lt": 30}}, {"age": 29.99}, True),
    c("$gt: numeric string", {"age": {"$gt": 18}}, {"age": "30"}, True),
    c("$gte: decimal string", {"x": {"$gte": 30.5}}, {"x": "30.5"}, True),
    c("$gt: exponent string", {"x": {"$gt": 99}}, {"x": "1e2"}, True),
    c("$gt: leading zeros", {"x": {"$gt": 6}}, {"x": "007"}, True),
    c("$lt: negative numbers", {"x": {"$lt": -4.5}}, {"x": -5}, True),
    c("$gt: text is not a number", {"x": {"$gt": 0}}, {"x": "abc"}, False),
    c("$lt: text is not a number either", {"x": {"$lt": 0}}, {"x": "abc"}, False),
    c("$lte: empty string is not 0", {"x": {"$lte": 0}}, {"x": ""}, False),
    c("$gt: string with a blank", {"x": {"$gt": 0}}, {"x": " 5"}, False),
    c("$gt: boolean is not a number", {"x": {"$gt": 0}}, {"x": True}, False),
    c("$gt: missing", {"x": {"$gt": -10}}, MISSING, False),
    c("$lt: missing", {"x": {"$lt": 10}}, MISSING, False),
    c("range: inside", {"age": {"$gte": 18, "$lt": 65}}, {"age": 64.99}, True),
    c("range: upper edge excluded", {"age": {"$gte": 18, "$lt": 65}}, {"age": 65}, False),
    c("range: lower edge included", {"age": {"$gte": 18, "$lt": 65}}, {"age": "18"}, True),
    c("two operators, one fails", {"age": {"$gt": 18, "$ne": 30}}, {"age": 30}, False),
]

VERSIONS = [
    c("$vlt: 1.2.3 < 1.10.0", {"v": {"$vlt": "1.10.0"}}, {"v": "1.2.3"}, True),
    c("$vgt: 1.10.0 > 1.2.3", {"v": {"$vgt": "1.2.3"}}, {"v": "1.10.0"}, True),
    c("$vgt: 10.0.0 > 9.99.999", {"v": {"$vgt": "9.99.999"}}, {"v": "10.0.0"}, True),
    c("$vlt: pre-release before release", {"v": {"$vlt": "1.0.0"}}, {"v": "1.0.0-beta"}, True),
    c("$vgt: release after pre-release", {"v": {"$vgt": "1.0.0-rc.1"}}, {"v": "1.0.0"}, True),
    c("$vlt: alpha before beta", {"v": {"$vlt": "1.0.0-beta"}}, {"v": "1.0.0-alpha"}, True),
    c("$vlt: beta.2 before beta.11", {"v": {"$vlt": "1.0.0-beta.11"}}, {"v": "1.0.0-beta.2"}, True),
    c("$veq: leading v dropped", {"v": {"$veq": "1.2.3"}}, {"v": "v1.2.3"}, True),
    c("$veq: leading V kept", {"v": {"$veq": "1.2.3"}}, {"v": "V1.2.3"}, False),
    c("$veq: build metadata dropped", {"v": {"$veq": "1.2.3"}}, {"v": "1.2.3+build.5"}, True),
    c("$vne: build metadata only", {"v": {"$vne": "1.2.3"}}, {"v": "1.2.3+build"}, False),
    c("$vne: different", {"v": {"$vne": "1.2.3"}}, {"v": "1.2.4"}, True),
    c("$vne: missing is false", {"v": {"$vne": "1.0.0"}}, MISSING, False),
    c("$vgt: missing", {"v": {"$vgt": "0.0.0"}}, MISSING, False),
    c("$vlt: 1.2 (two parts) before 1.2.0", {"v": {"$vlt": "1.2.0"}}, {"v": "1.2"}, True),
    c("$vgt: 1.2.3.4 sorts before 1.2.3 (~ after the third part)", {"v": {"$vgt": "1.2.3"}}, {"v": "1.2.3.4"}, False),
    c("$vgt: parts over 5 digits are not padded", {"v": {"$vgt": "99999.0.0"}}, {"v": "123456.0.0"}, False),
    c("$vgte: equal pre-releases", {"v": {"$vgte": "1.2.3-rc.1"}}, {"v": "1.2.3-rc.1"}, True),
    c("$vgt: equal pre-releases", {"v": {"$vgt": "1.2.3-rc.1"}}, {"v": "1.2.3-rc.1"}, False),
    c("$vlte: equal", {"v": {"$vlte": "1.2.3"}}, {"v": "1.2.3"}, True),
    c("$vgte: number attribute 2 as text", {"v": {"$vgte": "1.9.9"}}, {"v": 2}, True),
    c("$vgt: non-ASCII pre-release after z (byte order)", {"v": {"$vgt": "1.0.0-z"}}, {"v": "1.0.0-é"}, True),
    c("$vlt: U+FF21 before an emoji (code point order, not UTF-16)", {"v": {"$vlt": "1.0.0-😀"}}, {"v": "1.0.0-Ａ"}, True),
]

REGEXES = [
    c("$regex: anchored, equal", {"c": {"$regex": "^FR$"}}, {"c": "FR"}, True),
    c("$regex: anchored, longer", {"c": {"$regex": "^FR$"}}, {"c": "FRA"}, False),
    c("$regex: anywhere", {"c": {"$regex": "ran"}}, {"c": "France"}, True),
    c("$regex: case matters", {"c": {"$regex": "fr"}}, {"c": "France"}, False),
    c("$regex: $ is the end of the text, not before a final newline", {"c": {"$regex": "^abc$"}}, {"c": "abc\n"}, False),
    c("$regex: . matches a carriage return", {"c": {"$regex": "^a.c$"}}, {"c": "a\rc"}, True),
    c("$regex: . does not match a newline", {"c": {"$regex": "^a.c$"}}, {"c": "a\nc"}, False),
    c("$regex: . matches one code point (emoji)", {"c": {"$regex": "^.$"}}, {"c": "😀"}, True),
    c("$regex: non-ASCII text", {"c": {"$regex": "^caf.$"}}, {"c": "café"}, True),
    c("$regex: non-ASCII pattern", {"c": {"$regex": "^用户"}}, {"c": "用户123"}, True),
    c("$regex: \\d ASCII digits", {"c": {"$regex": "^\\d+$"}}, {"c": "123"}, True),
    c("$regex: \\d not other digits", {"c": {"$regex": "^\\d+$"}}, {"c": "١٢٣"}, False),
    c("$regex: \\w ASCII", {"c": {"$regex": "^\\w+$"}}, {"c": "café"}, False),
    c("$regex: \\s a tab", {"c": {"$regex": "a\\sb"}}, {"c": "a\tb"}, True),
    c("$regex: \\s not a no-break space", {"c": {"$regex": "a\\sb"}}, {"c": "a\u00a0b"}, False),
    c("$regex: \\b word boundary", {"c": {"$regex": "\\bword\\b"}}, {"c": "a word here"}, True),
    c("$regex: class negation matches a newline", {"c": {"$regex": "^[^a]$"}}, {"c": "\n"}, True),
    c("$regex: alternation in a non-capturing group", {"c": {"$regex": "^(?:en|fr)-"}}, {"c": "fr-CA"}, True),
    c("$regex: counted repetition", {"c": {"$regex": "x{2,3}"}}, {"c": "axxb"}, True),
    c("$regex: escaped dot", {"c": {"$regex": "^[a-z]+@example\\.com$"}}, {"c": "bob@example.com"}, True),
    c("$regex: escaped dot does not match another character", {"c": {"$regex": "^[a-z]+@example\\.com$"}}, {"c": "bob@exampleXcom"}, False),
    c("$regex: escaped underscore", {"c": {"$regex": "^a\\_b$"}}, {"c": "a_b"}, True),
    c("$regex: number attribute as text", {"n": {"$regex": "^4"}}, {"n": 42}, True),
    c("$regex: boolean attribute as text", {"b": {"$regex": "^t"}}, {"b": True}, True),
    c("$regex: missing", {"c": {"$regex": ".*"}}, MISSING, False),
    c("$regex: empty pattern matches present", {"c": {"$regex": ""}}, {"c": ""}, True),
]

EXISTS = [
    c("$exists true: present", {"c": {"$exists": True}}, FR | {"c": "x"}, True),
    c("$exists true: missing", {"c": {"$exists": True}}, MISSING, False),
    c("$exists true: empty string is present", {"c": {"$exists": True}}, {"c": ""}, True),
    c("$exists true: false is present", {"c": {"$exists": True}}, {"c": False}, True),
    c("$exists true: null is absent", {"c": {"$exists": True}}, {"c": None}, False),
    c("$exists false: missing", {"c": {"$exists": False}}, MISSING, True),
    c("$exists false: present", {"c": {"$exists": False}}, {"c": "x"}, False),
]

NOT_FR = {"$not": FR}
LOGIC = [
    c("empty condition holds", {}, MISSING, True),
    c("empty condition holds with attributes", {}, FR, True),
    c("several keys: all hold", {"country": "FR", "age": {"$gte": 18}}, {"country": "FR", "age": "20"}, True),
    c("several keys: one fails", {"country": "FR", "age": {"$gte": 18}}, {"country": "FR", "age": "17"}, False),
    c("$and: empty list holds", {"$and": []}, MISSING, True),
    c("$and: all hold", {"$and": [{"age": {"$gte": 18}}, FR]}, {"country": "FR", "age": 18}, True),
    c("$and: one fails", {"$and": [{"age": {"$gte": 18}}, FR]}, {"country": "DE", "age": 18}, False),
    c("$or: empty list is false", {"$or": []}, FR, False),
    c("$or: first holds", {"$or": [FR, {"country": "DE"}]}, FR, True),
    c("$or: second holds", {"$or": [FR, {"country": "DE"}]}, {"country": "DE"}, True),
    c("$or: none holds", {"$or": [FR, {"country": "DE"}]}, {"country": "IT"}, False),
    c("$or: an empty condition holds", {"$or": [{}]}, MISSING, True),
    c("$not: negates", NOT_FR, {"country": "DE"}, True),
    c("$not: negates a match", NOT_FR, FR, False),
    c("$not: negates the whole, missing attribute", NOT_FR, MISSING, True),
    c("$not: of an empty condition", {"$not": {}}, MISSING, False),
    c("$not: of an empty $or", {"$not": {"$or": []}}, MISSING, True),
    c("$not: of $ne, missing attribute", {"$not": {"country": {"$ne": "FR"}}}, MISSING, False),
    c("$and with another key", {"$and": [FR], "beta": True}, {"country": "FR", "beta": "true"}, True),
    c("nested: $or of $and and $not, first branch",
      {"$or": [{"$and": [{"a": 1}, {"b": 2}]}, {"$not": {"c": {"$exists": True}}}]}, {"a": "1", "b": 2, "c": "x"}, True),
    c("nested: $or of $and and $not, second branch",
      {"$or": [{"$and": [{"a": 1}, {"b": 2}]}, {"$not": {"c": {"$exists": True}}}]}, {"a": 1}, True),
    c("nested: $or of $and and $not, neither",
      {"$or": [{"$and": [{"a": 1}, {"b": 2}]}, {"$not": {"c": {"$exists": True}}}]}, {"a": 1, "c": "x"}, False),
    c("nested: $not of $or with an empty $or inside", {"$not": {"$or": [{"$or": []}, {"$and": []}]}}, MISSING, False),
    c("nested: 9 $not around a literal (10 levels)",
      {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": FR}}}}}}}}}, FR, False),
]

CONDITIONS = LITERALS + EQUALITY + NUMBERS + VERSIONS + REGEXES + EXISTS + LOGIC


def nested_not(levels, inner):
    """`inner` inside `levels - 1` $not: a condition of `levels` levels."""
    for _ in range(levels - 1):
        inner = {"$not": inner}
    return inner


def sized(total_bytes):
    """{"a": {"$in": [...]}} whose compact JSON is exactly `total_bytes` bytes."""
    base = len('{"a":{"$in":[""]}}')
    return {"a": {"$in": ["x" * (total_bytes - base)]}}


def v(name, condition, paths):
    return {"name": name, "condition": condition, "expected": paths}


DEEP = "conditions" + ".$not" * 10
VALIDATIONS = [
    v("valid: empty", {}, []),
    v("valid: every operator", {"a": "x", "b": {"$eq": 1, "$ne": True, "$in": ["x", 1, False], "$nin": [],
                                               "$gt": 1, "$gte": 1.5, "$lt": -1, "$lte": 0},
                                "v": {"$vgt": "1.0.0", "$vgte": "1", "$vlt": "2", "$vlte": "2", "$veq": "v1", "$vne": "1"},
                                "r": {"$regex": "^(?:a|b)[0-9]{2,}$", "$exists": True}}, []),
    v("valid: escaped underscore pattern", {"a": {"$regex": "^a\\_b$"}}, []),
    v("valid: pattern of 256 characters", {"a": {"$regex": "é" * 256}}, []),
    v("valid: 10 levels", nested_not(10, FR), []),
    v("valid: 4096 bytes", sized(4096), []),
    v("unknown operator on an attribute", {"country": {"$foo": 1}}, ["conditions.country.$foo"]),
    v("unknown top-level operator", {"$xor": []}, ["conditions.$xor"]),
    v("value-level $not is unknown", {"a": {"$not": {"$eq": 1}}}, ["conditions.a.$not"]),
    v("look-ahead in $or[1]", {"$or": [FR, {"country": {"$regex": "(?=x)"}}]}, ["conditions.$or[1].country.$regex"]),
    v("look-behind", {"a": {"$regex": "(?<=x)y"}}, ["conditions.a.$regex"]),
    v("back-reference", {"a": {"$regex": "(a)\\1"}}, ["conditions.a.$regex"]),
    v("named group", {"a": {"$regex": "(?P<n>x)"}}, ["conditions.a.$regex"]),
    v("inline flag", {"a": {"$regex": "(?i)abc"}}, ["conditions.a.$regex"]),
    v("possessive quantifier", {"a": {"$regex": "a++"}}, ["conditions.a.$regex"]),
    v("pattern does not compile", {"a": {"$regex": "("}}, ["conditions.a.$regex"]),
    v("pattern of 257 characters", {"a": {"$regex": "é" * 257}}, ["conditions.a.$regex"]),
    v("pattern not a string", {"a": {"$regex": 1}}, ["conditions.a.$regex"]),
    v("$in not a list", {"a": {"$in": "FR"}}, ["conditions.a.$in"]),
    v("$in with a null", {"a": {"$in": ["FR", None]}}, ["conditions.a.$in[1]"]),
    v("$nin with a list inside", {"a": {"$nin": [["FR"]]}}, ["conditions.a.$nin[0]"]),
    v("$gt with a string", {"a": {"$gt": "18"}}, ["conditions.a.$gt"]),
    v("$lte with a boolean", {"a": {"$lte": True}}, ["conditions.a.$lte"]),
    v("$vgt with a number", {"a": {"$vgt": 1}}, ["conditions.a.$vgt"]),
    v("$exists with a number", {"a": {"$exists": 1}}, ["conditions.a.$exists"]),
    v("$eq with a list", {"a": {"$eq": [1]}}, ["conditions.a.$eq"]),
    v("null literal", {"a": None}, ["conditions.a"]),
    v("list literal", {"a": []}, ["conditions.a"]),
    v("empty operator object", {"a": {}}, ["conditions.a"]),
    v("object without operators", {"a": {"b": 1}}, ["conditions.a.b"]),
    v("$and not a list", {"$and": {}}, ["conditions.$and"]),
    v("$not not an object", {"$not": []}, ["conditions.$not"]),
    v("$or of a number", {"$or": [1]}, ["conditions.$or[0]"]),
    v("11 levels", nested_not(11, FR), [DEEP]),
    v("4097 bytes", sized(4097), ["conditions"]),
    v("not an object", ["a"], ["conditions"]),
    v("two problems, in document order", {"a": {"$foo": 1}, "$or": [{"b": {"$gt": "x"}}]},
      ["conditions.a.$foo", "conditions.$or[0].b.$gt"]),
]
