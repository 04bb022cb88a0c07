#!/usr/bin/env python3
"""Reference values for api/src/stats/, computed independently with scipy, statsmodels
and GrowthBook's published stats engine (gbstats: sequential, Bayesian, CUPED).

    pip install scipy statsmodels gbstats==0.8.0
    python3 scripts/reference_stats.py > api/tests/data/reference_stats.json
    python3 scripts/reference_stats.py --users < per_user_data.json   # used by api/tests/api.rs
    python3 scripts/reference_stats.py --metrics < catalog_data.json  # used by api/tests/metrics.rs

Fixed horizon (conversion and value): gbstats TwoSidedTTest on the relative lift, checked
here against the same test written with scipy (delta method, Student t with Welch's degrees
of freedom); the absolute interval is the relative one times the control mean. A value
whose control mean is 0 or below: scipy's Welch t-test on the difference. SRM: scipy's
chisquare. Sequential: gbstats SequentialTwoSidedTTest on the relative lift. Bayesian: gbstats EffectBayesianABTest with
a flat (improper) prior on the relative lift. CUPED: gbstats RegressionAdjustedStatistic
with TwoSidedTTest. Power: statsmodels NormalIndPower (fixed horizon); for the sequential
test, gbstats' confidence-sequence width and scipy's brentq.

Catalog metrics (`--metrics`, see from_metrics): capping is winsorization with numpy
(np.minimum at the cap; a percentile cap is the element at index floor(level * n) of the
sorted per-user values of all variants, as ClickHouse's quantileExact); a ratio is gbstats
RatioStatistic with TwoSidedTTest and SequentialTwoSidedTTest; a quantile is numpy's
np.quantile(method="inverted_cdf") (the value at rank ceil(n q)), its interval the order
statistics at the exact binomial ranks (quantile_ranks: a full search with scipy.stats.binom,
not the api's tail sums), and a comparison of two quantiles gbstats'
tests on statistics whose variance of the mean is the square of (hi - lo) / 2z.
"""
import json
import math
import sys

import numpy as np
from scipy import stats
from scipy.optimize import brentq
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower

from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
from gbstats.frequentist.tests import FrequentistConfig, SequentialConfig, SequentialTwoSidedTTest, TwoSidedTTest
from gbstats.models.statistics import ProportionStatistic, RatioStatistic, RegressionAdjustedStatistic, SampleMeanStatistic

# The api's default: a flat (improper) prior on the relative lift, gbstats' default too.
PRIOR = GaussianPrior(mean=0, variance=0.3**2, proper=False)


def relative_t_test(m1, s1, n1, m2, s2, n2, alpha):
    """The relative lift m2/m1 - 1 tested with scipy alone: delta-method variance from each
    arm's variance of the mean (s = var/n), Student t with Welch's degrees of freedom."""
    rel = m2 / m1 - 1
    se = math.sqrt(s2 / m1**2 + m2**2 * s1 / m1**4)
    dof = (s1 + s2) ** 2 / (s1**2 / (n1 - 1) + s2**2 / (n2 - 1))
    half = stats.t.ppf(1 - alpha / 2, dof) * se
    return float(2 * stats.t.sf(abs(rel) / se, dof)), rel, [rel - half, rel + half]


def fixed(a, b, alpha):
    """The fixed-horizon test of b against a: gbstats TwoSidedTTest on the relative lift,
    checked against the same test written with scipy; the absolute interval is the
    relative one times the control mean."""
    sa, sb = gb_stat(a), gb_stat(b)
    m1, m2 = sa.mean, sb.mean
    if m1 <= 0:
        raise ValueError("use welch() for a control mean of 0 or below")
    r = TwoSidedTTest(sa, sb, FrequentistConfig(alpha=alpha, difference_type="relative")).compute_result()
    p, rel, ci = relative_t_test(m1, sa.variance / sa.n, sa.n, m2, sb.variance / sb.n, sb.n, alpha)
    assert abs(p - r.p_value) <= 1e-9 + 1e-7 * p, (p, r.p_value)
    assert all(abs(x - y) <= 1e-9 + 1e-7 * abs(y) for x, y in zip(ci, r.ci)), (ci, r.ci)
    return dict(alpha=alpha, p_value=float(r.p_value), relative_lift=float(r.expected),
                relative_ci=[float(x) for x in r.ci], absolute_ci=[float(m1 * x) for x in r.ci])


def proportions(n1, x1, n2, x2, alpha):
    return dict(n1=n1, x1=x1, n2=n2, x2=x2, **fixed(dict(n=n1, x=x1), dict(n=n2, x=x2), alpha))


def sample_sums(v):
    v = np.asarray(v, float)
    return dict(n=len(v), sum=float(v.sum()), sum_sq=float((v * v).sum()))


def means(a, b, alpha):
    """Per-user samples; a control mean of 0 or below is tested on the absolute scale with
    scipy's Welch t-test (no relative lift)."""
    sa, sb = sample_sums(a), sample_sums(b)
    arms = dict(n1=sa["n"], sum1=sa["sum"], sum_sq1=sa["sum_sq"], n2=sb["n"], sum2=sb["sum"], sum_sq2=sb["sum_sq"])
    if np.mean(a) > 0:
        return dict(**arms, **fixed(sa, sb, alpha))
    res = stats.ttest_ind(np.asarray(b, float), np.asarray(a, float), equal_var=False)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    return dict(**arms, alpha=alpha, p_value=float(res.pvalue), absolute_ci=[float(ci.low), float(ci.high)],
                relative_lift=None, relative_ci=None)


def ratio_sums(m, d):
    m, d = np.asarray(m, float), np.asarray(d, float)
    return dict(n=len(m), num_sum=float(m.sum()), num_sum_sq=float((m * m).sum()), den_sum=float(d.sum()),
                den_sum_sq=float((d * d).sum()), num_den=float((m * d).sum()))


def gb_ratio(r):
    mean = lambda s, q: SampleMeanStatistic(n=r["n"], sum=s, sum_squares=q)
    return RatioStatistic(n=r["n"], m_statistic=mean(r["num_sum"], r["num_sum_sq"]),
                          d_statistic=mean(r["den_sum"], r["den_sum_sq"]), m_d_sum_of_products=r["num_den"])


def ratios(a, b, alpha, tuning):
    """A ratio metric per user (numerator a[0], denominator a[1]) of treatment b against
    control a: gbstats RatioStatistic with TwoSidedTTest and SequentialTwoSidedTTest."""
    ca, cb = ratio_sums(*a), ratio_sums(*b)
    fixed = TwoSidedTTest(gb_ratio(ca), gb_ratio(cb), FrequentistConfig(alpha=alpha, difference_type="relative"))
    seq = SequentialTwoSidedTTest(gb_ratio(ca), gb_ratio(cb), SequentialConfig(
        alpha=alpha, difference_type="relative", sequential_tuning_parameter=tuning))
    f, q = fixed.compute_result(), seq.compute_result()
    return dict(control=ca, treatment=cb, alpha=alpha, tuning=tuning,
                control_ratio=float(gb_ratio(ca).mean), treatment_ratio=float(gb_ratio(cb).mean),
                p_value=float(f.p_value), relative_ci=[float(x) for x in f.ci],
                sequential_p_value=float(q.p_value), sequential_relative_ci=[float(x) for x in q.ci])


def ratio_cases(rng):
    out = []
    for n_a, n_b, lam, lift, alpha, tuning in [(800, 820, 1.2, 0.1, 0.05, 5000), (3000, 2900, 0.4, -0.05, 0.01, 5000),
                                               (150, 160, 2.0, 0.3, 0.10, 1000)]:
        arms = []
        for n, l in [(n_a, 0.0), (n_b, lift)]:
            orders = rng.poisson(lam, n)
            revenue = np.array([rng.gamma(2.0, 20.0 * (1 + l), k).sum() for k in orders])
            arms.append((revenue, orders))
        out.append(ratios(arms[0], arms[1], alpha, tuning))
    return out


def srm(observed, weights):
    total = sum(observed)
    expected = [total * w / sum(weights) for w in weights]
    return dict(observed=observed, weights=weights,
                p_value=float(stats.chisquare(observed, expected).pvalue))


def corrections(p):
    return dict(p=p, holm=[float(x) for x in multipletests(p, method="holm")[1]],
                bh=[float(x) for x in multipletests(p, method="fdr_bh")[1]])


def gb_stat(s):
    """A gbstats statistic from our sufficient statistics: {"n", "x"} or {"n", "sum", "sum_sq"}."""
    if "x" in s:
        return ProportionStatistic(n=s["n"], sum=s["x"])
    return SampleMeanStatistic(n=s["n"], sum=s["sum"], sum_squares=s["sum_sq"])


def gb_views(a, b, alpha, tuning):
    """Sequential and Bayesian views of treatment b against control a."""
    seq = lambda kind: SequentialTwoSidedTTest(gb_stat(a), gb_stat(b), SequentialConfig(
        alpha=alpha, difference_type=kind, sequential_tuning_parameter=tuning)).compute_result()
    relative = seq("relative")
    m1 = gb_stat(a).mean
    bayes = EffectBayesianABTest(gb_stat(a), gb_stat(b), EffectBayesianConfig(
        alpha=alpha, difference_type="relative", prior_type="relative", prior_effect=PRIOR)).compute_result()
    return dict(control=a, treatment=b, alpha=alpha, tuning=tuning,
                sequential=dict(p_value=float(relative.p_value), absolute_ci=[float(m1 * x) for x in relative.ci],
                                relative_ci=[float(x) for x in relative.ci]),
                bayesian=dict(chance_to_beat_control=float(bayes.chance_to_win), expected_loss=float(bayes.risk[1]),
                              credible_interval=[float(x) for x in bayes.ci]))


def paired_sums(y, x, binary):
    y, x = np.asarray(y, float), np.asarray(x, float)
    return dict(n=len(y), y_sum=float(y.sum()), y_sum_sq=float((y * y).sum()), x_sum=float(x.sum()),
                x_sum_sq=float((x * x).sum()), xy_sum=float((x * y).sum()), binary=binary)


def gb_ra(s):
    make = (lambda n, t, _: ProportionStatistic(n=n, sum=t)) if s["binary"] else \
        (lambda n, t, tt: SampleMeanStatistic(n=n, sum=t, sum_squares=tt))
    return RegressionAdjustedStatistic(n=s["n"], post_statistic=make(s["n"], s["y_sum"], s["y_sum_sq"]),
                                       pre_statistic=make(s["n"], s["x_sum"], s["x_sum_sq"]),
                                       post_pre_sum_of_products=s["xy_sum"], theta=0)


def cuped(a, b, alpha):
    cfg = FrequentistConfig(alpha=alpha, difference_type="relative")
    adjusted = TwoSidedTTest(gb_ra(a), gb_ra(b), cfg)
    result = adjusted.compute_result()
    plain = TwoSidedTTest(gb_ra(a).post_statistic, gb_ra(b).post_statistic, cfg)
    return dict(control=a, treatment=b, alpha=alpha, theta=float(adjusted.stat_a.theta),
                relative_lift=float(result.expected), relative_ci=[float(x) for x in result.ci],
                p_value=float(result.p_value), variance_reduction=float(1 - adjusted.variance / plain.variance))


def cs_half_width(variance, n, alpha, tuning):
    """Eq. 9 of Waudby-Smith et al. (arXiv:2103.06476v7) for an estimate of variance
    `variance` after n units (n may be fractional when traffic is extrapolated)."""
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning)
    s2 = variance * n
    return math.sqrt(s2) * math.sqrt(2 * (n * rho**2 + 1) * math.log(math.sqrt(n * rho**2 + 1) / alpha) / (n * rho) ** 2)


def power_boundary(mean, var, n_c, n_t, alpha, tuning):
    """(se, boundary) of the relative lift under no effect."""
    se = math.sqrt(var / mean**2 * (1 / n_c + 1 / n_t))
    if tuning is None:
        return se, None
    boundary = cs_half_width(se**2, n_c + n_t, alpha, tuning)
    if float(n_c).is_integer() and float(n_t).is_integer():  # the transcription agrees with gbstats
        stat = lambda n: SampleMeanStatistic(n=int(n), sum=mean * n, sum_squares=var * (n - 1) + mean**2 * n)
        lo, hi = SequentialTwoSidedTTest(stat(n_c), stat(n_t), SequentialConfig(
            alpha=alpha, difference_type="relative", sequential_tuning_parameter=tuning)).confidence_interval
        assert abs((hi - lo) / 2 - boundary) <= 1e-9 * boundary, ((hi - lo) / 2, boundary)
    return se, boundary


def mde(mean, var, n_c, n_t, alpha, tuning):
    se, boundary = power_boundary(mean, var, n_c, n_t, alpha, tuning)
    if boundary is None:  # fixed horizon: statsmodels' power of the standardised effect
        # (its solve_power stops at ~1e-6; brentq on its power function goes to 1e-13)
        pw = lambda d: NormalIndPower().power(effect_size=d, nobs1=n_c, alpha=alpha, ratio=n_t / n_c,
                                              alternative="two-sided") - 0.8
        d = brentq(pw, 1e-9, 100, xtol=1e-15, rtol=1e-13)
        return float(d * math.sqrt(var) / abs(mean))
    f = lambda d: stats.norm.cdf((d - boundary) / se) + stats.norm.cdf((-d - boundary) / se) - 0.8
    return float(brentq(f, 0, boundary + 10 * se, xtol=1e-14, rtol=1e-13))


def power(mean, var, n_c, n_t, alpha, tuning, elapsed, target):
    now = mde(mean, var, n_c, n_t, alpha, tuning)
    at = lambda days: mde(mean, var, n_c * days / elapsed, n_t * days / elapsed, alpha, tuning) - target
    days = 0.0 if now <= target else float(brentq(at, elapsed, elapsed + 3650, xtol=1e-10, rtol=1e-12)) - elapsed
    return dict(mean=mean, variance=var, n_c=n_c, n_t=n_t, alpha=alpha, tuning=tuning, elapsed_days=elapsed,
                target=target, mde_relative=now, days_to_target=days)


def from_users(spec):
    """Statistics from raw per-user data, as the API integration test sends it on stdin:
    {"alpha", "allocations": [..], "variants": [{"converted": [0|1, ..], "values": [..]}, ..]}
    Each non-control variant is compared with the first."""
    alpha = spec["alpha"]
    vs = spec["variants"]
    c = vs[0]
    out = {"srm_p_value": float(stats.chisquare(
        [len(v["converted"]) for v in vs],
        [sum(len(v["converted"]) for v in vs) * a / sum(spec["allocations"]) for a in spec["allocations"]]).pvalue),
        "comparisons": []}
    tuning = spec.get("tuning", 5000)
    for t in vs[1:]:
        conv = proportions(len(c["converted"]), sum(c["converted"]), len(t["converted"]), sum(t["converted"]), alpha)
        val = means(c["values"], t["values"], alpha)
        conv_views = gb_views(dict(n=len(c["converted"]), x=sum(c["converted"])),
                              dict(n=len(t["converted"]), x=sum(t["converted"])), alpha, tuning)
        val_views = gb_views(sample_sums(c["values"]), sample_sums(t["values"]), alpha, tuning)
        conv.update(sequential=conv_views["sequential"], bayesian=conv_views["bayesian"])
        val.update(sequential=val_views["sequential"], bayesian=val_views["bayesian"])
        if "pre_converted" in c:
            conv["cuped"] = cuped(paired_sums(c["converted"], c["pre_converted"], True),
                                  paired_sums(t["converted"], t["pre_converted"], True), alpha)
            val["cuped"] = cuped(paired_sums(c["values"], c["pre_values"], False),
                                 paired_sums(t["values"], t["pre_values"], False), alpha)
        out["comparisons"].append({"conversion": conv, "value": val})
    return out


def winsorized(per_variant, cap):
    """Per-user sums of each variant, capped from above with numpy: at an absolute value, or
    at the element at index floor(level * n) of the sorted per-user sums of all variants
    together (ClickHouse's quantileExact(level), which the api's cap statement uses)."""
    sums = [np.array([float(np.sum(u)) for u in users]) for users in per_variant]
    if cap is None:
        return sums, None
    if "absolute" in cap:
        c = float(cap["absolute"])
    else:
        pooled = np.sort(np.concatenate(sums))
        c = float(pooled[min(int(math.floor(cap["percentile"] * len(pooled))), len(pooled) - 1)])
    return [np.minimum(s, c) for s in sums], c


def quantile_ranks(n, q, alpha):
    """1-based ranks [value, lo, hi]: ceil(n q), and the exact binomial interval (Hahn and
    Meeker 1991, section 5.2) by a full search with scipy.stats.binom: [x_l, x_u] misses the
    true quantile below with probability binom.cdf(l - 1, n, q) and above with
    binom.sf(u - 1, n, q); on each side the two ranks whose miss brackets alpha/2 (within
    1..n), and of those pairs the one whose coverage binom.cdf(u - 1) - binom.cdf(l - 1) is
    nearest 1 - alpha (to 1e-12; on a tie the wider, then the lower)."""
    r = np.arange(1, n + 1)
    below, above = stats.binom.cdf(r - 1, n, q), stats.binom.sf(r - 1, n, q)
    first = int(np.searchsorted(below, alpha / 2))  # ranks 1..first miss below under alpha/2
    lows = sorted({min(max(x, 1), n) for x in (first, first + 1)})
    last = int(np.sum(above >= alpha / 2))  # ranks 1..last miss above at least alpha/2
    highs = sorted({min(max(x, 1), n) for x in (last, last + 1)})

    def key(pair):
        l, u = pair
        cover = max(stats.binom.cdf(u - 1, n, q) - stats.binom.cdf(l - 1, n, q), 0.0)
        return (round(abs(cover - (1 - alpha)) * 1e12), -(u - l), l)
    l, u = min(((l, u) for l in lows for u in highs), key=key)
    return [int(min(max(math.ceil(n * q), 1), n)), l, u]


def quantile_variant(values, q, alpha):
    """The quantile (numpy's inverted_cdf: the value at rank ceil(n q)) and the order
    statistics at the interval's ranks."""
    v = np.sort(np.asarray(values, float))
    ranks = quantile_ranks(len(v), q, alpha)
    value = float(np.quantile(v, q, method="inverted_cdf"))
    assert value == v[ranks[0] - 1], (value, ranks)
    return dict(n=len(v), value=value, ranks=ranks, lo=float(v[ranks[1] - 1]), hi=float(v[ranks[2] - 1]))


def quantile_stat(r, z):
    """The quantile as a gbstats mean statistic whose variance of the mean is the squared
    standard error its interval implies, ((hi - lo) / 2z)^2, over its n events."""
    n, se = r["n"], (r["hi"] - r["lo"]) / (2 * z)
    return SampleMeanStatistic(n=n, sum=r["value"] * n, sum_squares=se * se * n * (n - 1) + r["value"] ** 2 * n)


def gb_compare(a, b, alpha, tuning):
    """Treatment b against control a (gbstats statistics): TwoSidedTTest and
    SequentialTwoSidedTTest on the relative lift; absolute intervals are the relative ones
    times the control mean."""
    f = TwoSidedTTest(a, b, FrequentistConfig(alpha=alpha, difference_type="relative")).compute_result()
    q = SequentialTwoSidedTTest(a, b, SequentialConfig(
        alpha=alpha, difference_type="relative", sequential_tuning_parameter=tuning)).compute_result()
    view = lambda r: dict(p_value=float(r.p_value), relative_ci=[float(x) for x in r.ci],
                          absolute_ci=[float(a.mean * x) for x in r.ci])
    return dict(relative_lift=float(f.expected), **view(f), sequential=view(q))


def from_metrics(spec):
    """Catalog metrics from raw data, as api/tests/metrics.rs sends them on stdin:
    {"alpha", "tuning", "metrics": [{"key", "kind", ...}]}, variants in order (control first):
    - conversion: {"users": [[event, ..] per user] per variant}: users, converted users and
      each treatment's comparison (gbstats ProportionStatistic);
    - mean: {"users": [[value, ..] per user] per variant, "cap": null | {"absolute": c} |
      {"percentile": p}}: the per-user sums winsorized (numpy), their total and mean, and
      each treatment's comparison (gbstats SampleMeanStatistic of the capped values);
    - ratio: {"numerator", "denominator": [[value, ..] per user] per variant}: the sums, the
      ratio and each treatment's comparison (gbstats RatioStatistic);
    - quantile: {"q", "values": [[event value, ..] per variant]}: n, the quantile, its
      interval's ranks and values, each treatment's comparison (gbstats on the interval's
      standard error)."""
    alpha, tuning = spec["alpha"], spec["tuning"]
    z = float(stats.norm.ppf(1 - alpha / 2))
    out = {}
    for m in spec["metrics"]:
        kind, r = m["kind"], {}
        if kind == "conversion":
            r["variants"] = [dict(users=len(u), total=sum(1 for e in u if len(e) > 0)) for u in m["users"]]
            for v in r["variants"]:
                v["mean"] = v["total"] / v["users"]
            st = [ProportionStatistic(n=v["users"], sum=v["total"]) for v in r["variants"]]
            r["comparisons"] = [gb_compare(st[0], t, alpha, tuning) for t in st[1:]]
        elif kind == "mean":
            sums, r["cap"] = winsorized(m["users"], m.get("cap"))
            r["variants"] = [dict(users=len(s), total=float(s.sum()), mean=float(s.mean())) for s in sums]
            st = [gb_stat(sample_sums(s)) for s in sums]
            r["comparisons"] = [gb_compare(st[0], t, alpha, tuning) for t in st[1:]]
        elif kind == "ratio":
            sums = [ratio_sums([sum(u) for u in num], [sum(u) for u in den])
                    for num, den in zip(m["numerator"], m["denominator"])]
            r["variants"] = [dict(users=s["n"], total=s["num_sum"], denominator=s["den_sum"],
                                  mean=float(gb_ratio(s).mean)) for s in sums]
            r["comparisons"] = [gb_compare(gb_ratio(sums[0]), gb_ratio(s), alpha, tuning) for s in sums[1:]]
        else:
            r["variants"] = [quantile_variant(v, m["q"], alpha) for v in m["values"]]
            c = quantile_stat(r["variants"][0], z)
            r["comparisons"] = [gb_compare(c, quantile_stat(t, z), alpha, tuning) for t in r["variants"][1:]]
        out[m["key"]] = r
    return out


def pooled_theta(rng):
    """Theta over all variants: gbstats' joint statistic, built from three variants' sums."""
    variants = []
    for n in (1500, 1400, 1600):
        x = rng.gamma(1.5, 20.0, n) * (rng.random(n) < 0.6)
        y = 0.6 * x + rng.gamma(1.2, 10.0, n)
        variants.append(paired_sums(y, x, False))
    tot = lambda k: sum(v[k] for v in variants)
    n = sum(v["n"] for v in variants)
    joint = RegressionAdjustedStatistic(
        n=n, post_statistic=SampleMeanStatistic(n=n, sum=tot("y_sum"), sum_squares=tot("y_sum_sq")),
        pre_statistic=SampleMeanStatistic(n=n, sum=tot("x_sum"), sum_squares=tot("x_sum_sq")),
        post_pre_sum_of_products=tot("xy_sum"), theta=0)
    return dict(variants=variants, theta=float(joint.covariance / joint.pre_statistic.variance))


def cuped_cases(rng):
    out = []
    for n_a, n_b, rate, lift, alpha in [(2000, 2100, 0.2, 0.1, 0.05), (500, 450, 0.5, -0.05, 0.01), (30000, 30000, 0.04, 0.03, 0.05)]:
        arms = []
        for n, l in [(n_a, 0.0), (n_b, lift)]:
            pre_value = rng.gamma(1.5, 20.0, n) * (rng.random(n) < 0.6)
            value = 0.7 * pre_value * (1 + l) + rng.gamma(1.2, 10.0, n) * (rng.random(n) < 0.5)
            pre = (rng.random(n) < rate).astype(float)
            post = np.where(pre == 1, rng.random(n) < rate * 3 * (1 + l), rng.random(n) < rate * (1 + l)).astype(float)
            arms.append((post, pre, value, pre_value))
        (pa, xa, va, pva), (pb, xb, vb, pvb) = arms
        out.append(cuped(paired_sums(pa, xa, True), paired_sums(pb, xb, True), alpha))
        out.append(cuped(paired_sums(va, pva, False), paired_sums(vb, pvb, False), alpha))
    return out


def main():
    if sys.argv[1:] == ["--users"]:
        print(json.dumps(from_users(json.load(sys.stdin))))
        return
    if sys.argv[1:] == ["--metrics"]:
        print(json.dumps(from_metrics(json.load(sys.stdin))))
        return
    rng = np.random.default_rng(20261127)
    out = {
        "proportions": [
            proportions(1000, 100, 1000, 120, 0.05),
            proportions(5000, 250, 5100, 310, 0.05),
            proportions(200, 30, 180, 22, 0.01),
            proportions(123456, 4567, 120001, 4890, 0.10),
            proportions(50, 1, 60, 9, 0.05),
            # the review's case: a pooled z-test read p = 0.049 beside a relative interval
            # of [-7.9 %, +91.9 %]
            proportions(1000, 50, 1000, 71, 0.05),
        ],
        "means": [
            means(rng.exponential(5.0, 800), rng.exponential(5.5, 820), 0.05),
            means(rng.normal(10, 3, 50), rng.normal(10.5, 6, 70), 0.05),
            means(np.concatenate([np.zeros(900), rng.gamma(2.0, 25.0, 100)]),
                  np.concatenate([np.zeros(880), rng.gamma(2.0, 26.0, 120)]), 0.01),
            # net refunds: a negative control mean, tested on the absolute scale
            means(-rng.gamma(2.0, 5.0, 300), -rng.gamma(2.0, 4.0, 310), 0.05),
        ],
        "corrections": [
            corrections([0.01, 0.04, 0.03, 0.2]),
            corrections([0.001, 0.5]),
            corrections([0.02]),
            corrections([0.049, 0.049, 0.049]),
            corrections([0.3, 0.0001, 0.02, 0.02, 0.9, 0.011]),
        ],
        "views": [
            gb_views(dict(n=1000, x=100), dict(n=1000, x=120), 0.05, 5000),
            gb_views(dict(n=5000, x=250), dict(n=5100, x=310), 0.05, 5000),
            gb_views(dict(n=200, x=30), dict(n=180, x=22), 0.01, 1000),
            gb_views(dict(n=123456, x=4567), dict(n=120001, x=4890), 0.10, 5000),
            gb_views(dict(n=50, x=1), dict(n=60, x=9), 0.05, 100),
            gb_views(dict(n=800, sum=4000.0, sum_sq=52000.0), dict(n=820, sum=4510.0, sum_sq=61000.0), 0.05, 5000),
            gb_views(dict(n=20000, sum=51234.5, sum_sq=912345.0), dict(n=19800, sum=50999.0, sum_sq=905000.0), 0.05, 20000),
            # the review's sequential case: p = 0.048 (absolute) beside a relative CS containing 0
            gb_views(dict(n=1000, x=100), dict(n=1000, x=146), 0.05, 5000),
        ],
        "cuped": cuped_cases(rng),
        "ratios": ratio_cases(rng),
        "cuped_theta_three_variants": pooled_theta(rng),
        "power": [
            power(0.1, 0.09, 1000, 1000, 0.05, None, 7.0, 0.05),
            power(0.1, 0.09, 1000, 1000, 0.05, 5000, 7.0, 0.05),
            power(0.03, 0.03 * 0.97, 52000, 48000, 0.01, None, 10.0, 0.2),
            power(25.0, 900.0, 4000, 4100, 0.05, 5000, 3.5, 0.02),
            power(25.0, 900.0, 4000, 4100, 0.10, 20000, 2.0, 0.5),
        ],
        "srm": [
            srm([5000, 5000], [50.0, 50.0]),
            srm([5100, 4900], [50.0, 50.0]),
            srm([3300, 3350, 3410], [33.33, 33.33, 33.34]),
            srm([820, 180], [80.0, 20.0]),
        ],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
