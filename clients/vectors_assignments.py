"""Hand-written evaluation scenarios of clients/vectors.json (part 2: rule 7, coverage changes,
a layer of three experiments with a holdout, non-ASCII ids)."""
from vectors_support import (answer, config, e, exp, find_user, held_out, layer, layer_bucket, variants,
                             with_buckets, with_coverage_bucket, with_gb)

AB = variants(("a", 50.0), ("b", 50.0))
THIRDS = variants(("v0", 33.33), ("v1", 33.33), ("v2", 33.34))
FIFTHS = variants(*((f"v{i}", 20.0) for i in range(5)))
UNEVEN = variants(("v0", 10.0), ("v1", 20.0), ("v2", 30.0), ("v3", 25.0), ("v4", 15.0))


def sha256_allocation_rules():
    out = []
    for label, vs, cuts in [("2 variants 50/50", AB, [5000, 10000]),
                            ("3 variants 33.33/33.33/33.34", THIRDS, [3333, 6666, 10000]),
                            ("5 variants of 20", FIFTHS, [2000, 4000, 6000, 8000, 10000]),
                            ("5 variants 10/20/30/25/15", UNEVEN, [1000, 3000, 6000, 8500, 10000])]:
        salt = f"alloc-{len(vs)}-{cuts[0]}"
        edges = sorted({0, 9999} | {c - 1 for c in cuts[:-1]} | set(cuts[:-1]))
        for b in edges:
            index = next(i for i, c in enumerate(cuts) if b < c)
            out.append(e(f"assigned (sha256, {label}): bucket {b}", config(exp(1, salt, vs)), 1,
                         with_buckets(salt, b), reason="assigned", variant=vs[index]["name"]))
    zero = variants(("off", 0.0), ("on", 100.0))
    tiny = variants(("first", 0.01), ("rest", 99.99))
    out += [
        e("assigned (sha256, 0/100): bucket 0 skips the empty variant", config(exp(1, "zero", zero)), 1,
          with_buckets("zero", 0), reason="assigned", variant="on"),
        e("assigned (sha256, 0.01/99.99): bucket 0", config(exp(1, "tiny", tiny)), 1, with_buckets("tiny", 0),
          reason="assigned", variant="first"),
        e("assigned (sha256, 0.01/99.99): bucket 1", config(exp(1, "tiny", tiny)), 1, with_buckets("tiny", 1),
          reason="assigned", variant="rest"),
    ]
    return out


def sha256_coverage_rules():
    def cov(label, percent, value, reason):
        salt = "cov-sha"
        return e(f"coverage (sha256) {label}: coverage bucket {value}",
                 config(exp(1, salt, AB, coverage_percent=percent)), 1, with_coverage_bucket(salt, value),
                 reason=reason)
    return [
        cov("0%", 0.0, 0, "not_in_traffic"),
        cov("10%", 10.0, 999, "assigned"),
        cov("10%", 10.0, 1000, "not_in_traffic"),
        cov("10.01%", 10.01, 1000, "assigned"),
        cov("33.33%", 33.33, 3332, "assigned"),
        cov("33.33%", 33.33, 3333, "not_in_traffic"),
        cov("99.99%", 99.99, 9998, "assigned"),
        cov("99.99%", 99.99, 9999, "not_in_traffic"),
        cov("100%", 100.0, 9999, "assigned"),
    ]


def gb_rules():
    def gb(label, vs, coverage, n, variant):
        seed = "gb-seed"
        reason = "assigned" if variant else "not_in_traffic"
        return e(f"growthbook_v2 ({label}, coverage {coverage}): n = {n}",
                 config(exp(1, "gb-salt", vs, hash="growthbook_v2", seed=seed, coverage_percent=coverage)), 1,
                 with_gb(seed, n), reason=reason, variant=variant)
    out = [gb("50/50", AB, 50.0, n, v) for n, v in
           [(0.0, "a"), (0.2499, "a"), (0.25, None), (0.4999, None), (0.5, "b"), (0.7499, "b"), (0.75, None), (0.9999, None)]]
    out += [gb("50/50", AB, 100.0, n, v) for n, v in [(0.4999, "a"), (0.5, "b"), (0.9999, "b")]]
    out += [gb("50/50", AB, 0.0, 0.0, None)]
    out += [gb("33.33/33.33/33.34", THIRDS, 100.0, n, v) for n, v in
            [(0.3332, "v0"), (0.3333, "v1"), (0.6665, "v1"), (0.6666, "v2"), (0.9999, "v2")]]
    # 0.1 + 0.2 = 0.30000000000000004 in 64-bit floating point: n = 0.3 is still in the second range.
    tenths = variants(("v0", 10.0), ("v1", 20.0), ("v2", 70.0))
    out += [gb("10/20/70, sums in floating point", tenths, 100.0, n, v) for n, v in
            [(0.0999, "v0"), (0.1, "v1"), (0.2999, "v1"), (0.3, "v1"), (0.3001, "v2")]]
    out += [gb("10/20/70", tenths, 50.0, n, v) for n, v in [(0.0499, "v0"), (0.05, None), (0.1999, "v1"), (0.2, None)]]
    # 0.2 + 0.2 + 0.2 = 0.6000000000000001: n = 0.6 is still in the third range.
    return out + [gb("5 variants of 20", FIFTHS, 100.0, n, v) for n, v in
                  [(0.1999, "v0"), (0.2, "v1"), (0.4, "v2"), (0.6, "v2"), (0.6001, "v3"), (0.8, "v4")]]


def coverage_change_pairs():
    """The same users at coverage 10 and 20: whoever had a variant at 10 keeps it at 20."""
    out = []
    for kind, extra in [("sha256", {}), ("growthbook_v2", {"hash": "growthbook_v2", "seed": "grow-seed"})]:
        cfg = {p: config(exp(1, "grow-salt", THIRDS, coverage_percent=p, **extra)) for p in (10.0, 20.0)}
        kept = [find_user(lambda u, v=v: answer(cfg[10.0], 1, u) == v, f"k{kind[0]}{v}-") for v in ("v0", "v1", "v2")]
        added = [find_user(lambda u: answer(cfg[10.0], 1, u) is None and answer(cfg[20.0], 1, u), f"a{kind[0]}{i}-")
                 for i in range(3)]
        for user in kept + added:
            variant = answer(cfg[20.0], 1, user)
            for p in (10.0, 20.0):
                reason = "not_in_traffic" if p == 10.0 and user in added else "assigned"
                out.append(e(f"coverage 10 -> 20 ({kind}), user {user}: at {p:g}%", cfg[p], 1, user,
                             reason=reason, variant=None if reason == "not_in_traffic" else variant))
    return out


def three_experiment_layer():
    """Three experiments sharing the layer "checkout" (a third each) and a holdout of that layer."""
    salt = "layer-checkout"
    holdout = exp(50, "hold-50", variants(("general", 90.0), ("holdout", 10.0)), holdout=True)
    ranges = [(0, 3333), (3333, 6666), (6666, 10000)]
    experiments = [exp(10 + i, f"checkout-{i}", AB, layer=layer("checkout", *r)) for i, r in enumerate(ranges)]
    cfg = config(*experiments, holdout, layers=[("checkout", salt)], holdouts=[(50, "checkout")])
    held = [find_user(lambda u: held_out(cfg, 50, u), f"held{i}-") for i in range(3)]
    edges = [find_user(lambda u, b=b: layer_bucket(salt, u) == b and not held_out(cfg, 50, u), f"edge{b}-")
             for b in (0, 3332, 3333, 6665, 6666, 9999)]
    others = [f"shopper-{i}" for i in range(6)]
    out = []
    for user in held + edges + others:
        b, is_held = layer_bucket(salt, user), held_out(cfg, 50, user)
        for i, (start, end) in enumerate(ranges):
            reason = "holdout" if is_held else "assigned" if start <= b < end else "not_in_layer"
            out.append(e(f"layer of 3 + holdout: {user} (layer bucket {b}) in experiment {10 + i}", cfg, 10 + i, user,
                         reason=reason))
    return out


def non_ascii_ids():
    cfg = config(exp(1, "sel-é-盐", THIRDS), exp(2, "sel-é-盐", THIRDS, hash="growthbook_v2", seed="種-😀"))
    return [e(f"non-ASCII id {user!r} ({kind})", cfg, i, user, reason="assigned")
            for user in ["josé", "用户123", "😀", "👩‍💻", "Zoë-ß"] for i, kind in [(1, "sha256"), (2, "growthbook_v2")]]


RULES = [sha256_allocation_rules, sha256_coverage_rules, gb_rules, coverage_change_pairs, three_experiment_layer,
         non_ascii_ids]
