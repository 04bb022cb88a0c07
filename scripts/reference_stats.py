#!/usr/bin/env python3
"""Reference values for api/src/stats.rs, computed independently with scipy/statsmodels.

    pip install scipy statsmodels
    python3 scripts/reference_stats.py > api/tests/data/reference_stats.json
    python3 scripts/reference_stats.py --users < per_user_data.json   # used by api/tests

Conversion: statsmodels' proportions_ztest (pooled) for the p-value, a Wald interval of
the difference, and the delta method for the relative lift. Value: scipy's Welch t-test
on per-user samples rebuilt from the same sufficient statistics. SRM: scipy's chisquare.
"""
import json
import math
import sys

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest


def proportions(n1, x1, n2, x2, alpha):
    _, p = proportions_ztest([x2, x1], [n2, n1])
    p1, p2 = x1 / n1, x2 / n2
    v1, v2 = p1 * (1 - p1) / n1, p2 * (1 - p2) / n2
    z = stats.norm.ppf(1 - alpha / 2)
    d = p2 - p1
    rel = p2 / p1 - 1
    rel_se = math.sqrt(v2 / p1**2 + p2**2 * v1 / p1**4)
    return dict(n1=n1, x1=x1, n2=n2, x2=x2, alpha=alpha, p_value=float(p),
                absolute_ci=[d - z * math.sqrt(v1 + v2), d + z * math.sqrt(v1 + v2)],
                relative_lift=rel, relative_ci=[rel - z * rel_se, rel + z * rel_se])


def means(a, b, alpha):
    a, b = np.asarray(a, float), np.asarray(b, float)
    res = stats.ttest_ind(b, a, equal_var=False)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    m1, m2 = a.mean(), b.mean()
    s1, s2 = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    z = stats.norm.ppf(1 - alpha / 2)
    rel = m2 / m1 - 1
    rel_se = math.sqrt(s2 / m1**2 + m2**2 * s1 / m1**4)
    return dict(n1=len(a), sum1=float(a.sum()), sum_sq1=float((a * a).sum()),
                n2=len(b), sum2=float(b.sum()), sum_sq2=float((b * b).sum()), alpha=alpha,
                p_value=float(res.pvalue), absolute_ci=[float(ci.low), float(ci.high)],
                relative_lift=rel, relative_ci=[rel - z * rel_se, rel + z * rel_se])


def srm(observed, weights):
    total = sum(observed)
    expected = [total * w / sum(weights) for w in weights]
    return dict(observed=observed, weights=weights,
                p_value=float(stats.chisquare(observed, expected).pvalue))


def corrections(p):
    return dict(p=p, holm=[float(x) for x in multipletests(p, method="holm")[1]],
                bh=[float(x) for x in multipletests(p, method="fdr_bh")[1]])


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
    for t in vs[1:]:
        conv = proportions(len(c["converted"]), sum(c["converted"]), len(t["converted"]), sum(t["converted"]), alpha)
        out["comparisons"].append({"conversion": conv, "value": means(c["values"], t["values"], alpha)})
    return out


def main():
    if sys.argv[1:] == ["--users"]:
        print(json.dumps(from_users(json.load(sys.stdin))))
        return
    rng = np.random.default_rng(20261127)
    out = {
        "proportions": [
            proportions(1000, 100, 1000, 120, 0.05),
            proportions(5000, 250, 5100, 310, 0.05),
            proportions(200, 30, 180, 22, 0.01),
            proportions(123456, 4567, 120001, 4890, 0.10),
            proportions(50, 1, 60, 9, 0.05),
        ],
        "means": [
            means(rng.exponential(5.0, 800), rng.exponential(5.5, 820), 0.05),
            means(rng.normal(10, 3, 50), rng.normal(10.5, 6, 70), 0.05),
            means(np.concatenate([np.zeros(900), rng.gamma(2.0, 25.0, 100)]),
                  np.concatenate([np.zeros(880), rng.gamma(2.0, 26.0, 120)]), 0.01),
        ],
        "corrections": [
            corrections([0.01, 0.04, 0.03, 0.2]),
            corrections([0.001, 0.5]),
            corrections([0.02]),
            corrections([0.049, 0.049, 0.049]),
            corrections([0.3, 0.0001, 0.02, 0.02, 0.9, 0.011]),
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
