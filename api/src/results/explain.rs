//! `?explain=true`: results that carry their proof. Beside the numbers: every ClickHouse
//! statement the answer ran (the exact text sent, bound values in place), the per-variant
//! sufficient statistics, and a self-contained Python program (scipy only) that recomputes
//! every p-value and interval of the answer from those statistics.

use serde::Serialize;

use super::Question;
use crate::{
    domain::Experiment,
    stats::{Analysis, Correction, Significance},
    storage::clickhouse::VariantStats,
};

/// One variant's sufficient statistics, as the statements returned them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VariantStatistics {
    pub variant: String,
    /// Exposed users.
    pub n: u64,
    /// Converted users.
    pub converted: u64,
    /// Sum and sum of squares of the per-user values.
    pub value_sum: f64,
    pub value_sum_sq: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Explain {
    /// Every ClickHouse statement the answer ran, in order, exactly as sent (bound values
    /// in place, as literals); the rollup's statements when it answered.
    pub statements: Vec<String>,
    /// Per variant (the control first): what every number is computed from.
    pub statistics: Vec<VariantStatistics>,
    /// A Python 3 program (needs scipy) that recomputes every treatment's p-values and
    /// intervals (fixed horizon, sequential, the decision after the correction) from
    /// `statistics` and prints them as JSON.
    pub python: String,
}

/// The explanation of one event type's results.
pub fn explain(
    experiment: &Experiment,
    rows: &[VariantStats],
    question: &Question,
    analysis: &Analysis,
    statements: Vec<String>,
) -> Explain {
    let statistics: Vec<VariantStatistics> = experiment
        .variants
        .iter()
        .map(|v| {
            let s = rows.iter().find(|r| r.variant == v.name).cloned().unwrap_or_default();
            VariantStatistics {
                variant: v.name.clone(),
                n: s.users,
                converted: s.converted_users,
                value_sum: s.value_sum,
                value_sum_sq: s.value_sum_sq,
            }
        })
        .collect();
    let input = serde_json::json!({
        "alpha": analysis.alpha,
        "tuning": analysis.sequential_tuning,
        "test": match analysis.significance {
            Significance::Sequential => "sequential",
            Significance::FixedHorizon => "fixed_horizon",
        },
        "correction": match question.correction {
            Correction::Holm => "holm",
            Correction::Bh => "bh",
            Correction::None => "none",
        },
        "value": question.value_property.is_some(),
        "variants": statistics,
    });
    let python = PROGRAM.replace("{{INPUT}}", &serde_json::to_string(&input).unwrap_or_default());
    Explain { statements, statistics, python }
}

/// The recomputation, written from docs/statistics.md with scipy alone (no code of ours).
const PROGRAM: &str = r#"# Recomputes the results' p-values and intervals from their sufficient statistics
# (docs/statistics.md): python3 this.py  (needs scipy)
import json, math
from scipy import stats

INPUT = json.loads(r'''{{INPUT}}''')
alpha, tuning = INPUT["alpha"], INPUT["tuning"]


def arm(v, metric):
    n = v["n"]
    if metric == "conversion":
        p = v["converted"] / n
        return p, p * (1 - p) / n, n
    mean = v["value_sum"] / n
    var = (v["value_sum_sq"] - v["value_sum"] * mean) / (n - 1)
    if var <= 1e-12 * mean * mean:
        var = 0.0
    return mean, var / n, n


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


out = {}
for metric in ["conversion"] + (["value"] if INPUT["value"] else []):
    control, rows = INPUT["variants"][0], []
    for v in INPUT["variants"][1:]:
        if control["n"] < 2 or v["n"] < 2:
            rows.append(None)
            continue
        est, var, rel, mc, dof, n = tests(arm(control, metric), arm(v, metric))
        if not var > 0:
            rows.append(None)
            continue
        rows.append(dict(variant=v["variant"], est=est, var=var, rel=rel, mc=mc, dof=dof, n=n,
                         p_fixed=p_fixed(est, var, dof), p_seq=p_seq(est, var, n)))
    tested = [r for r in rows if r]
    for key in ["p_fixed", "p_seq"]:
        for r, a in zip(tested, adjust([r[key] for r in tested], INPUT["correction"])):
            r["adj_" + key] = a
    result = []
    for r in tested:
        fixed = intervals(r["est"], half_fixed(r["est"], r["var"], r["dof"], r["p_fixed"]), r["rel"], r["mc"])
        seq = intervals(r["est"], half_seq(r["est"], r["var"], r["n"], r["p_seq"]), r["rel"], r["mc"])
        sequential = INPUT["test"] == "sequential"
        p, adj = (r["p_seq"], r["adj_p_seq"]) if sequential else (r["p_fixed"], r["adj_p_fixed"])
        half = (half_seq(r["est"], r["var"], r["n"], adj) if sequential
                else half_fixed(r["est"], r["var"], r["dof"], adj))
        decision = intervals(r["est"], half, r["rel"], r["mc"])
        result.append(dict(
            variant=r["variant"], p_value=r["p_fixed"], adjusted_p_value=r["adj_p_fixed"],
            relative_ci=fixed[0], absolute_ci=fixed[1],
            sequential=dict(p_value=r["p_seq"], adjusted_p_value=r["adj_p_seq"], relative_ci=seq[0], absolute_ci=seq[1]),
            decision=dict(p_value=p, adjusted_p_value=adj, relative_ci=decision[0], absolute_ci=decision[1],
                          significant=bool(adj < alpha))))
    out[metric] = result
print(json.dumps(out, indent=1))
"#;
