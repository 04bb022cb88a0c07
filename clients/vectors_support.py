"""Builders for the scenarios of make_vectors.py: configurations as GET /sdk/config writes
them (every field present), scenarios with their hand-written expectations, and a
deterministic search for user ids with a given property (ids `<prefix>0`, `<prefix>1`, ...)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))

from abtest_eval import bucket, coverage_bucket, evaluate, gb_v2  # noqa: E402

NOW = "2026-12-01T00:00:00Z"
UNSET = object()


def variants(*pairs):
    """[(name, allocation_percent), ...] as the configuration's variants."""
    return [{"name": name, "allocation_percent": percent} for name, percent in pairs]


def layer(key, start, end):
    return {"key": key, "range": [start, end]}


def exp(experiment_id, salt, variant_list, **fields):
    """An experiment with every field of the configuration; `fields` override the defaults."""
    experiment = {"id": experiment_id, "status": "running", "salt": salt, "hash": "sha256", "seed": salt,
                  "variants": variant_list, "coverage_percent": 100.0, "conditions": None, "layer": None,
                  "start_at": None, "stop_at": None, "forced": {}, "holdout": False}
    unknown = set(fields) - set(experiment)
    assert not unknown, f"unknown fields {unknown}"
    experiment.update(fields)
    return experiment


def config(*experiments, layers=(), holdouts=()):
    """A configuration document; layers as (key, salt), holdouts as (experiment_id, layer key or None)."""
    return {"version": 1,
            "layers": [{"key": key, "salt": salt} for key, salt in layers],
            "holdouts": [{"experiment_id": h, "layer": key} for h, key in holdouts],
            "experiments": list(experiments)}


def e(name, cfg, experiment_id, user_id, attributes=None, now=NOW, *, reason, variant=UNSET):
    """An evaluation scenario; `reason` (and `variant` when given) are the hand-written expectation."""
    scenario = {"name": name, "experiment_id": experiment_id, "user_id": user_id, "attributes": attributes or {},
                "now": now, "config": cfg, "expect_reason": reason}
    if variant is not UNSET:
        scenario["expect_variant"] = variant
    elif reason != "assigned":
        scenario["expect_variant"] = None
    return scenario


def find_user(predicate, prefix):
    """The first id `<prefix><n>` (n = 0, 1, ...) for which `predicate` holds."""
    for n in range(10**6):
        if predicate(f"{prefix}{n}"):
            return f"{prefix}{n}"
    raise AssertionError(f"no user {prefix}* found")


def answer(cfg, experiment_id, user, attributes=None):
    """The variant (or None) the Python evaluator gives at NOW."""
    return evaluate(cfg, experiment_id, user, attributes or {}, NOW)["variant"]


def held_out(cfg, holdout_id, user):
    return answer(cfg, holdout_id, user) == "holdout"


def layer_bucket(salt, user):
    return bucket(salt, user)


def with_buckets(salt, variant_bucket, coverage=None, prefix="b"):
    """A user whose bucket(salt) is `variant_bucket` (and coverage_bucket is below `coverage`
    basis points, when given)."""
    def fits(u):
        return bucket(salt, u) == variant_bucket and (coverage is None or coverage_bucket(salt, u) < coverage)
    return find_user(fits, f"{prefix}{variant_bucket}-")


def with_coverage_bucket(salt, value, prefix="c"):
    return find_user(lambda u: coverage_bucket(salt, u) == value, f"{prefix}{value}-")


def with_gb(seed, value, prefix="g"):
    """A user whose gb_v2(seed) is `value` (a multiple of 0.0001)."""
    return find_user(lambda u: gb_v2(seed, u) == value, f"{prefix}{round(value * 10000)}-")
