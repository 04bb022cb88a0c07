# Recomputes the results' p-values and intervals from their sufficient statistics
# (docs/statistics.md): python3 this.py  (needs scipy)
import json, math
from scipy import stats

INPUT = json.loads({{INPUT}})
alpha, tuning = INPUT["alpha"], INPUT["tuning"]


def sample_var(n, total, total_sq):
    mean = total / n
    var = (total_sq - total * mean) / (n - 1)
    return 0.0 if var <= 1e-12 * mean * mean else var


def arm(v, kind):
    """(mean, variance of the mean, units) of one variant; None when it has none."""
    n = v["n"]
    if n < 2:
        return None
    if kind == "conversion":
        p = v["converted"] / n
        return p, p * (1 - p) / n, n
    if kind in ("value", "mean"):
        return v["value_sum"] / n, sample_var(n, v["value_sum"], v["value_sum_sq"]) / n, n
    if kind == "ratio":  # the delta method (gbstats RatioStatistic)
        if v["den_sum"] == 0:
            return None
        mm, md = v["num_sum"] / n, v["den_sum"] / n
        vm, vd = sample_var(n, v["num_sum"], v["num_sum_sq"]), sample_var(n, v["den_sum"], v["den_sum_sq"])
        cov = (v["num_den"] - v["num_sum"] * v["den_sum"] / n) / (n - 1)
        var = vm / md**2 - 2 * cov * mm / md**3 + mm**2 * vd / md**4
        return mm / md, (0.0 if var <= 1e-12 * (mm / md) ** 2 else var) / n, n
    # quantile: the standard error its order-statistic interval implies
    se = (v["hi"] - v["lo"]) / (2 * stats.norm.ppf(1 - alpha / 2))
    return v["value"], se * se, n


def tests(c, t):
    """(estimate, variance, relative?, control mean, dof, units) of t against c."""
    (mc, sc, nc), (mt, st, nt) = c, t
    if mc > 0:
        est, var, rel = mt / mc - 1, st / mc**2 + mt**2 * sc / mc**4, True
    else:
        est, var, rel = mt - mc, sc + st, False
    term = lambda s, n: 0.0 if s == 0 else s * s / (n - 1)
    dof = (sc + st) ** 2 / (term(sc, nc) + term(st, nt)) if sc + st > 0 else float("nan")
    return est, var, rel, mc, dof, nc + nt


def rho2():
    return (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning


def p_fixed(est, var, dof):
    return float(min(1.0, 2 * stats.t.sf(abs(est) / math.sqrt(var), dof)))


def p_seq(est, var, n):
    r2, tr = rho2(), n * rho2() + 1
    return min(1.0, math.exp(math.log(tr) / 2 - r2 * (est * est * n / var) / (2 * tr)))


def half_fixed(est, var, dof, p):
    se = math.sqrt(var)
    if est != 0 and p > p_fixed(est, var, dof):
        if p >= 1:
            return None
        se = max(se, abs(est) / stats.t.ppf(1 - p / 2, dof))
    return float(stats.t.ppf(1 - alpha / 2, dof) * se)


def half_seq(est, var, n, p):
    r2, tr = rho2(), n * rho2() + 1
    if est != 0 and p > p_seq(est, var, n):
        var = max(var, est * est * n / (2 * tr * (math.log(tr) / 2 - math.log(p)) / r2))
    s2 = var * n
    return math.sqrt(s2) * math.sqrt(2 * tr * math.log(math.sqrt(tr) / alpha) / (n * math.sqrt(r2)) ** 2)


def adjust(p, how):
    m, order = len(p), sorted(range(len(p)), key=lambda i: p[i])
    out = list(p)
    if how == "holm":
        run = 0.0
        for rank, i in enumerate(order):
            run = max(run, min(1.0, (m - rank) * p[i]))
            out[i] = run
    elif how == "bh":
        run = 1.0
        for rank, i in reversed(list(enumerate(order))):
            run = min(run, min(1.0, m / (rank + 1) * p[i]))
            out[i] = run
    return out


def intervals(est, half, rel, mc):
    if half is None or not half > 0:
        return None, None
    lo, hi = est - half, est + half
    return ([lo, hi], [lo * mc, hi * mc]) if rel else (None, [lo, hi])


def compare(control, v, kind):
    """Both tests of `v` against `control` before any correction; None if untestable."""
    c, t = arm(control, kind), arm(v, kind)
    if c is None or t is None:
        return None
    est, var, rel, mc, dof, n = tests(c, t)
    if not var > 0:
        return None
    return dict(variant=v["variant"], est=est, var=var, rel=rel, mc=mc, dof=dof, n=n,
                p_fixed=p_fixed(est, var, dof), p_seq=p_seq(est, var, n))


def correct(rows, how):
    """Adjusts the family `rows` (both tests' p-values) in place."""
    for key in ["p_fixed", "p_seq"]:
        for r, a in zip(rows, adjust([r[key] for r in rows], how)):
            r["adj_" + key] = a


def decide(r):
    """The deciding test's p-values and the intervals widened to its adjusted p-value."""
    sequential = INPUT["test"] == "sequential"
    p, adj = (r["p_seq"], r["adj_p_seq"]) if sequential else (r["p_fixed"], r["adj_p_fixed"])
    half = half_seq(r["est"], r["var"], r["n"], adj) if sequential else half_fixed(r["est"], r["var"], r["dof"], adj)
    rel, absolute = intervals(r["est"], half, r["rel"], r["mc"])
    return dict(p_value=p, adjusted_p_value=adj, relative_ci=rel, absolute_ci=absolute, significant=bool(adj < alpha))
