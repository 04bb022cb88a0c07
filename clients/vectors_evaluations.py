"""Hand-written evaluation scenarios of clients/vectors.json (part 1: rules 1 to 6).

Every scenario names its expected reason, and its variant when the scenario fixes it (forced
users, users picked for their bucket); make_vectors.py fills in the rest with the Python
evaluator and checks that it agrees with what is written here."""
from vectors_support import answer as _answer
from vectors_support import config, e, exp, find_user, held_out, layer, layer_bucket, variants

SALT, SEED = "3b1f0c2a", "3b1f0c2a"
AB = variants(("red_button", 50.0), ("blue_button", 50.0))


def forced_rules():
    forced = {"qa-user-1": "blue_button", "josé": "red_button"}
    cfg = lambda **kw: config(exp(1, SALT, AB, forced=forced, **kw))  # noqa: E731
    holdout = exp(9, "h9", variants(("general", 0.0), ("holdout", 100.0)), holdout=True)
    gated = config(exp(1, SALT, AB, forced=forced, layer=layer("checkout", 0, 1)), holdout,
                   layers=[("checkout", "L1")], holdouts=[(9, None)])
    return [
        e("forced: running", cfg(), 1, "qa-user-1", reason="forced", variant="blue_button"),
        e("forced: non-ASCII id", cfg(), 1, "josé", reason="forced", variant="red_button"),
        e("forced: paused", cfg(status="paused"), 1, "qa-user-1", reason="forced", variant="blue_button"),
        e("forced: stopped is not forced", cfg(status="stopped"), 1, "qa-user-1", reason="not_running"),
        e("forced: before start", cfg(start_at="2027-01-01T00:00:00Z"), 1, "qa-user-1", reason="forced", variant="blue_button"),
        e("forced: after stop", cfg(stop_at="2026-01-01T00:00:00Z"), 1, "qa-user-1", reason="forced", variant="blue_button"),
        e("forced: coverage 0", cfg(coverage_percent=0.0), 1, "qa-user-1", reason="forced", variant="blue_button"),
        e("forced: not targeted", cfg(conditions={"country": "FR"}), 1, "qa-user-1", {"country": "DE"},
          reason="forced", variant="blue_button"),
        e("forced: held out and outside the layer", gated, 1, "qa-user-1", reason="forced", variant="blue_button"),
        e("forced: a user not in the list", cfg(), 1, "qa-user-2", reason="assigned"),
        e("forced: id constructor is not forced", cfg(), 1, "constructor", reason="assigned"),
        e("forced: id __proto__ is not forced", cfg(), 1, "__proto__", reason="assigned"),
        e("status: paused", cfg(status="paused"), 1, "u1", reason="not_running"),
        e("status: stopped", cfg(status="stopped"), 1, "u1", reason="not_running"),
        e("status: paused before start", cfg(status="paused", start_at="2027-01-01T00:00:00Z"), 1, "u1", reason="not_running"),
    ]


def schedule_rules():
    def at(name, now, reason, **kw):
        return e(f"schedule: {name}", config(exp(1, SALT, AB, **kw)), 1, "u1", now=now, reason=reason)
    start, stop = "2026-12-01T00:00:00Z", "2026-12-31T00:00:00Z"
    return [
        at("before start", "2026-11-30T23:59:59Z", "not_started", start_at=start),
        at("1 ns before start", "2026-11-30T23:59:59.999999999Z", "not_started", start_at=start),
        at("at start", start, "assigned", start_at=start),
        at("start in another offset, same instant", start, "assigned", start_at="2026-12-01T01:00:00+01:00"),
        at("start in another offset, 1 s later", start, "not_started", start_at="2026-12-01T01:00:01+01:00"),
        at("now in a negative offset", "2026-11-30T19:00:00-05:00", "assigned", start_at=start),
        at("fractional start", "2026-12-01T00:00:00.499999Z", "not_started", start_at="2026-12-01T00:00:00.5Z"),
        at("fractional start reached", "2026-12-01T00:00:00.500Z", "assigned", start_at="2026-12-01T00:00:00.5Z"),
        at("lower-case t and z", "2026-12-01t00:00:00z", "assigned", start_at=start),
        at("inside the window", "2026-12-15T12:00:00Z", "assigned", start_at=start, stop_at=stop),
        at("1 ns before stop", "2026-12-30T23:59:59.999999999Z", "assigned", stop_at=stop),
        at("at stop", stop, "ended", stop_at=stop),
        at("after stop", "2027-01-01T00:00:00Z", "ended", start_at=start, stop_at=stop),
        at("start after stop, before both: not started first", "2026-11-01T00:00:00Z", "not_started",
           start_at=stop, stop_at=start),
        at("stopped inside the window", "2026-12-15T00:00:00Z", "not_running", status="stopped", start_at=start, stop_at=stop),
        at("leap day", "2028-02-29T12:00:00Z", "not_started", start_at="2028-03-01T00:00:00Z"),
    ]


def global_holdout_rules():
    h_variants = variants(("general", 50.0), ("holdout", 50.0))
    holdout = exp(100, "hold-100", h_variants, holdout=True, coverage_percent=20.0)
    target = exp(1, SALT, AB)
    cfg = config(target, holdout, holdouts=[(100, None)])
    held = find_user(lambda u: held_out(cfg, 100, u), "held")
    general = find_user(lambda u: _answer(cfg, 100, u) == "general", "general")
    outside = find_user(lambda u: _answer(cfg, 100, u) is None, "outside")

    def with_holdout(**kw):
        return config(target, dict(holdout, **kw), holdouts=[(100, None)])
    second = exp(101, "hold-101", variants(("general", 0.0), ("holdout", 100.0)), holdout=True)
    v2 = exp(102, "hold-102", h_variants, holdout=True, hash="growthbook_v2", seed="hold-102", coverage_percent=20.0)
    cfg_v2 = config(target, v2, holdouts=[(102, None)])
    held_v2 = find_user(lambda u: held_out(cfg_v2, 102, u), "held-v2")
    general_v2 = find_user(lambda u: _answer(cfg_v2, 102, u) == "general", "general-v2")
    return [
        e("holdout (global): held out", cfg, 1, held, reason="holdout"),
        e("holdout (global): the holdout itself", cfg, 100, held, reason="assigned", variant="holdout"),
        e("holdout (global): general population", cfg, 1, general, reason="assigned"),
        e("holdout (global): the holdout itself, general", cfg, 100, general, reason="assigned", variant="general"),
        e("holdout (global): outside the holdout's traffic", cfg, 1, outside, reason="assigned"),
        e("holdout (global): the holdout itself, outside its traffic", cfg, 100, outside, reason="not_in_traffic"),
        e("holdout (global): paused holdout holds nobody", with_holdout(status="paused"), 1, held, reason="assigned"),
        e("holdout (global): not started holdout holds nobody", with_holdout(start_at="2027-01-01T00:00:00Z"), 1, held,
          reason="assigned"),
        e("holdout (global): forced into holdout", with_holdout(forced={general: "holdout"}), 1, general, reason="holdout"),
        e("holdout (global): forced into holdout, holdout paused", with_holdout(status="paused", forced={general: "holdout"}),
          1, general, reason="holdout"),
        e("holdout (global): forced into holdout, holdout stopped", with_holdout(status="stopped", forced={general: "holdout"}),
          1, general, reason="assigned"),
        e("holdout (global): forced into general", with_holdout(forced={held: "general"}), 1, held, reason="assigned"),
        e("holdout (global): targeted holdout, matching", with_holdout(conditions={"country": "FR"}), 1, held,
          {"country": "FR"}, reason="holdout"),
        e("holdout (global): targeted holdout, not matching", with_holdout(conditions={"country": "FR"}), 1, held,
          {"country": "DE"}, reason="assigned"),
        e("holdout (global): second holdout holds", config(target, holdout, second, holdouts=[(100, None), (101, None)]),
          1, general, reason="holdout"),
        e("holdout (global): a holdout is not held out by another",
          config(target, holdout, second, holdouts=[(100, None), (101, None)]), 100, general, reason="assigned", variant="general"),
        e("holdout (global): holdout not in the configuration", config(target, holdouts=[(100, None)]), 1, held,
          reason="assigned"),
        e("holdout (global): forced beats holdout", config(dict(target, forced={held: "red_button"}), holdout,
                                                           holdouts=[(100, None)]), 1, held, reason="forced", variant="red_button"),
        e("holdout (global): paused experiment first", config(dict(target, status="paused"), holdout,
                                                              holdouts=[(100, None)]), 1, held, reason="not_running"),
        e("holdout (global): not started first", config(dict(target, start_at="2027-01-01T00:00:00Z"), holdout,
                                                        holdouts=[(100, None)]), 1, held, reason="not_started"),
        e("holdout (global): before the layer", config(dict(target, layer=layer("checkout", 0, 1)), holdout,
                                                       layers=[("checkout", "L1")], holdouts=[(100, None)]), 1, held, reason="holdout"),
        e("holdout (global, growthbook_v2): held out", cfg_v2, 1, held_v2, reason="holdout"),
        e("holdout (global, growthbook_v2): general", cfg_v2, 1, general_v2, reason="assigned"),
    ]


def layer_holdout_rules():
    holdout = exp(200, "hold-200", variants(("general", 50.0), ("holdout", 50.0)), holdout=True)
    in_checkout = exp(1, SALT, AB, layer=layer("checkout", 0, 10000))
    in_search = exp(2, "s2", AB, layer=layer("search", 0, 10000))
    no_layer = exp(3, "s3", AB)
    cfg = config(in_checkout, in_search, no_layer, holdout, layers=[("checkout", "L1"), ("search", "L2")],
                 holdouts=[(200, "checkout")])
    held = find_user(lambda u: held_out(cfg, 200, u), "lh")
    free = find_user(lambda u: not held_out(cfg, 200, u), "lf")
    return [
        e("holdout (layer): held out of its layer", cfg, 1, held, reason="holdout"),
        e("holdout (layer): not of another layer", cfg, 2, held, reason="assigned"),
        e("holdout (layer): not of an experiment without a layer", cfg, 3, held, reason="assigned"),
        e("holdout (layer): general population", cfg, 1, free, reason="assigned"),
    ]


def layer_rules():
    salt = "L-edges"
    cfg = lambda start, end, key="checkout": config(  # noqa: E731
        exp(1, SALT, AB, layer=layer(key, start, end)), layers=[("checkout", salt)])
    edge = {b: find_user(lambda u, b=b: layer_bucket(salt, u) == b, f"edge{b}-") for b in (0, 3332, 3333, 6665, 6666, 9999)}
    out = [e(f"layer [3333, 6666): bucket {b}", cfg(3333, 6666), 1, u,
             reason="assigned" if 3333 <= b < 6666 else "not_in_layer") for b, u in edge.items()]
    return out + [
        e("layer [0, 10000): bucket 9999", cfg(0, 10000), 1, edge[9999], reason="assigned"),
        e("layer [0, 1): bucket 0", cfg(0, 1), 1, edge[0], reason="assigned"),
        e("layer [0, 1): bucket 3332", cfg(0, 1), 1, edge[3332], reason="not_in_layer"),
        e("layer key not in layers", cfg(0, 10000, key="nowhere"), 1, edge[0], reason="not_in_layer"),
        e("layer before conditions", config(exp(1, SALT, AB, layer=layer("checkout", 3333, 6666),
                                                 conditions={"country": "FR"}), layers=[("checkout", salt)]),
          1, edge[0], {"country": "DE"}, reason="not_in_layer"),
    ]


def targeting_rules():
    def t(name, conditions, attributes, reason, **kw):
        return e(f"conditions: {name}", config(exp(1, SALT, AB, conditions=conditions, **kw)), 1, "u1", attributes,
                 reason=reason)
    return [
        t("matching", {"country": "FR"}, {"country": "FR"}, "assigned"),
        t("not matching", {"country": "FR"}, {"country": "DE"}, "not_targeted"),
        t("missing attribute", {"country": "FR"}, {}, "not_targeted"),
        t("null: no targeting", None, {}, "assigned"),
        t("empty: always", {}, {}, "assigned"),
        t("empty $or: never", {"$or": []}, {"country": "FR"}, "not_targeted"),
        t("query-string number", {"age": {"$gte": 18}}, {"age": "30"}, "assigned"),
        t("JSON body number and boolean", {"age": {"$gte": 18}, "beta": True}, {"age": 30, "beta": True}, "assigned"),
        t("version", {"app": {"$vgte": "2.10.0"}}, {"app": "2.9.9"}, "not_targeted"),
        t("regex", {"email": {"$regex": "@example\\.com$"}}, {"email": "bob@example.com"}, "assigned"),
        t("$not", {"$not": {"country": {"$in": ["FR", "DE"]}}}, {"country": "IT"}, "assigned"),
        t("before coverage", {"country": "FR"}, {"country": "DE"}, "not_targeted", coverage_percent=0.0),
    ]


RULES = [forced_rules, schedule_rules, global_holdout_rules, layer_holdout_rules, layer_rules, targeting_rules]
