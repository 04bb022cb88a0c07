"""Schemathesis hooks (loaded through schemathesis.toml by scripts/schemathesis).

Some rules of the API cannot be written in JSON Schema; the OpenAPI document states them
in the descriptions of the operations and schemas concerned. Schemathesis generates
bodies from the schema alone, so a body it calls valid may break one of them. For the
two operations whose bodies have such rules, the hooks below make the bodies Schemathesis
generates as *valid* follow them too, changing nothing else; bodies generated as
invalid are left alone. This keeps `positive_data_acceptance` strict for those
operations (a valid body must be accepted) instead of allowing their 400s.

- POST /experiments: variant names are unique in the experiment, and the allocations sum
  to exactly 100 (each in (0, 100] with two decimals, which the schema does say).
- POST /events, POST /events/batch and POST /exposures: `timestamp` is not before 1970
  and at most `ingest.max_future_skew` (1 h) ahead of the receive time: a rule relative
  to "now".
- POST /experiments, rollout settings: `forced` names existing variants, `conditions` are
  a valid condition (a language of its own, docs/assignment.md), `start_at` precedes
  `stop_at`, and `layer` names a layer that exists. Bodies generated as valid keep
  `start_at`/`stop_at` (in order) and drop the other three, whose rules the API tests
  cover (api/tests/rollout.rs).
- POST /holdouts: `layer` names a layer that exists (dropped from valid bodies).
- GET /experiments/{id}/results and /timeseries: `attribute` and `attribute_value` go
  together (a valid query has both or neither); `phase` names one of the experiment's
  phases (stored state: dropped from valid queries); results without `event_type` need
  an experiment with metrics (valid queries get an `event_type`; api/tests/metrics.rs
  covers the metrics answer); `dimension` breaks down by an attribute and does not go with
  a segment (`attribute`): dropped from valid queries that have one.
- POST /metrics: a `conversion` metric has no `value_property` and no `capping`.
- POST /experiments/{id}/assignment/{user_id}: `attributes` are at most 50, with names of
  1 to 128 characters without NUL and values that are strings (at most 1024 characters),
  numbers or booleans.
"""

import re
import time

import schemathesis

MAX_VARIANT_NAME_CHARS = 100
TOTAL_BASIS_POINTS = 10_000


def _generated_valid(case):
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def _unique_names(variants):
    seen = set()
    for i, variant in enumerate(variants):
        name = variant.get("name")
        if not isinstance(name, str):
            continue
        n = 0
        candidate = name
        while candidate in seen:
            n += 1
            suffix = f"~{i}.{n}"
            candidate = name[: MAX_VARIANT_NAME_CHARS - len(suffix)] + suffix
        variant["name"] = candidate
        seen.add(candidate)


def _allocations_summing_to_100(variants):
    """Keeps the generated allocations' proportions, in basis points summing to 10 000."""
    weights = []
    for variant in variants:
        pct = variant.get("allocation_percent")
        weights.append(pct if isinstance(pct, (int, float)) and pct > 0 else 1.0)
    total = sum(weights)
    shares = [w / total * (TOTAL_BASIS_POINTS - len(variants)) for w in weights]
    bps = [1 + int(s) for s in shares]  # at least 1 bp (0.01 %) each
    by_remainder = sorted(range(len(variants)), key=lambda i: shares[i] - int(shares[i]), reverse=True)
    for i in by_remainder[: TOTAL_BASIS_POINTS - sum(bps)]:
        bps[i] += 1
    for variant, bp in zip(variants, bps):
        variant["allocation_percent"] = bp / 100


@schemathesis.hook("map_case").apply_to(method="POST", path="/experiments")
def experiment_rules(context, case):
    if not _generated_valid(case) or not isinstance(case.body, dict):
        return case
    variants = case.body.get("variants")
    if isinstance(variants, list) and all(isinstance(v, dict) for v in variants) and 2 <= len(variants) <= 20:
        _unique_names(variants)
        _allocations_summing_to_100(variants)
    for field in ("forced", "conditions", "layer"):
        case.body.pop(field, None)
    start, stop = case.body.get("start_at"), case.body.get("stop_at")
    if isinstance(start, str) and isinstance(stop, str):
        case.body.pop("stop_at")  # their order needs parsing both; one alone is always valid
    return case


@schemathesis.hook("map_case").apply_to(method="POST", path="/holdouts")
def holdout_rules(context, case):
    if _generated_valid(case) and isinstance(case.body, dict):
        case.body.pop("layer", None)
    return case


def _attribute(value):
    if isinstance(value, str):
        return value[:1024]
    if isinstance(value, (bool, int, float)):
        return value
    return str(value)[:1024]


@schemathesis.hook("map_case").apply_to(method="POST", path="/experiments/{id}/assignment/{user_id}")
def attribute_rules(context, case):
    if _generated_valid(case) and isinstance(case.body, dict) and isinstance(case.body.get("attributes"), dict):
        attributes = {}
        for name, value in case.body["attributes"].items():
            name = name.replace("\0", "")[:128] or "a"
            attributes[name] = _attribute(value)
        case.body["attributes"] = dict(list(attributes.items())[:50])
    return case


def _timestamp_in_range(event):
    if not isinstance(event, dict):
        return
    ts = event.get("timestamp")
    now_ms = int(time.time() * 1000)
    if isinstance(ts, (int, float)) and not isinstance(ts, bool) and not 0 <= ts <= now_ms:
        event["timestamp"] = type(ts)(int(ts) % (now_ms + 1))
    elif isinstance(ts, str):
        year = re.match(r"^(\d{4})-", ts)
        if year and not 1971 <= int(year.group(1)) < time.gmtime().tm_year:
            # Any date-time of 2000, whatever its offset, is in range.
            event["timestamp"] = "2000" + ts[4:]


@schemathesis.hook("map_case").apply_to(method="POST", path="/events")
def event_timestamp(context, case):
    if _generated_valid(case):
        _timestamp_in_range(case.body)
    return case


@schemathesis.hook("map_case").apply_to(method="POST", path="/events/batch")
def batch_timestamps(context, case):
    if _generated_valid(case) and isinstance(case.body, list):
        for event in case.body:
            _timestamp_in_range(event)
    return case


@schemathesis.hook("map_case").apply_to(method="POST", path="/exposures")
def exposure_timestamps(context, case):
    if _generated_valid(case) and isinstance(case.body, dict) and isinstance(case.body.get("exposures"), list):
        for exposure in case.body["exposures"]:
            _timestamp_in_range(exposure)
    return case


def _segment_together(case):
    """`attribute` and `attribute_value` go together: a valid query has both or neither."""
    if _generated_valid(case) and isinstance(case.query, dict):
        if ("attribute" in case.query) != ("attribute_value" in case.query):
            case.query.pop("attribute", None)
            case.query.pop("attribute_value", None)
    return case


def _no_stored_phase(case):
    if _generated_valid(case) and isinstance(case.query, dict):
        case.query.pop("phase", None)
    return case


@schemathesis.hook("map_case").apply_to(method="GET", path="/experiments/{id}/results")
def results_segment(context, case):
    case = _no_stored_phase(_segment_together(case))
    if _generated_valid(case):
        case.query = dict(case.query or {})
        case.query.setdefault("event_type", "purchase")
        if "attribute" in case.query:
            case.query.pop("dimension", None)
    return case


@schemathesis.hook("map_case").apply_to(method="GET", path="/experiments/{id}/timeseries")
def timeseries_segment(context, case):
    return _no_stored_phase(_segment_together(case))


@schemathesis.hook("map_case").apply_to(method="POST", path="/metrics")
def metric_rules(context, case):
    if _generated_valid(case) and isinstance(case.body, dict) and case.body.get("kind") == "conversion":
        case.body.pop("value_property", None)
        case.body.pop("capping", None)
    return case
