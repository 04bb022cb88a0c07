//! Several treatments against one control: p-values adjusted as a family.

use serde::{Deserialize, Serialize};

use super::Comparison;

/// How p-values of several treatments against one control are adjusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Holm-Bonferroni step-down: controls the family-wise error rate.
    #[default]
    Holm,
    /// Benjamini-Hochberg step-up: controls the false discovery rate.
    Bh,
    /// Unadjusted.
    None,
}

/// Adjusted p-values in the order given (statsmodels' `multipletests`, methods `holm` and
/// `fdr_bh`).
pub fn adjust_p_values(p: &[f64], correction: Correction) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = p.to_vec();
    match correction {
        Correction::None => {}
        Correction::Holm => {
            let mut running: f64 = 0.0;
            for (rank, &i) in order.iter().enumerate() {
                running = running.max(((m - rank) as f64 * p[i]).min(1.0));
                adjusted[i] = running;
            }
        }
        Correction::Bh => {
            let mut running: f64 = 1.0;
            for (rank, &i) in order.iter().enumerate().rev() {
                running = running.min((m as f64 / (rank + 1) as f64 * p[i]).min(1.0));
                adjusted[i] = running;
            }
        }
    }
    adjusted
}

/// Adjusts the p-values of a family of comparisons in place and re-decides significance
/// on the adjusted values (widening the decision's intervals to match). Comparisons without a p-value take no part.
/// Fixed-horizon and sequential p-values are adjusted as two separate families.
pub fn apply_correction(family: &mut [&mut Comparison], correction: Correction) {
    let tested: Vec<usize> = (0..family.len()).filter(|&i| family[i].p_value.is_some()).collect();
    let p: Vec<f64> = tested.iter().filter_map(|&i| family[i].p_value).collect();
    for (&i, adjusted) in tested.iter().zip(adjust_p_values(&p, correction)) {
        family[i].adjusted_p_value = Some(adjusted);
    }
    let sequential_p = |c: &Comparison| c.sequential.as_ref().and_then(|s| s.p_value);
    let tested: Vec<usize> = (0..family.len()).filter(|&i| sequential_p(family[i]).is_some()).collect();
    let p: Vec<f64> = tested.iter().filter_map(|&i| sequential_p(family[i])).collect();
    for (&i, adjusted) in tested.iter().zip(adjust_p_values(&p, correction)) {
        if let Some(s) = family[i].sequential.as_mut() {
            s.adjusted_p_value = Some(adjusted);
        }
    }
    for c in family.iter_mut() {
        let adjusted = c.deciding_adjusted_p_value();
        if let (Some(d), Some(p)) = (c.decision.as_mut(), adjusted) {
            d.adjust(p);
        }
        c.significant = c.decision.as_ref().is_some_and(|d| d.significant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{
        compare_proportions,
        reference::{close, reference},
        Analysis, Proportion,
    };

    #[test]
    fn corrections_match_statsmodels_multipletests() {
        let cases = reference().corrections;
        assert!(cases.len() >= 4);
        for c in cases {
            for (ours, theirs) in adjust_p_values(&c.p, Correction::Holm).iter().zip(&c.holm) {
                close(*ours, *theirs, &format!("holm {:?}", c.p));
            }
            for (ours, theirs) in adjust_p_values(&c.p, Correction::Bh).iter().zip(&c.bh) {
                close(*ours, *theirs, &format!("bh {:?}", c.p));
            }
            assert_eq!(adjust_p_values(&c.p, Correction::None), c.p);
        }
    }

    #[test]
    fn corrected_significance_follows_the_adjusted_p_value() {
        let analysis = Analysis::fixed(0.05);
        let control = Proportion { n: 2000, x: 200 };
        let with = |x| compare_proportions(control, Proportion { n: 2000, x }, &analysis);
        let (mut a, mut b, mut c) =
            (with(248), compare_proportions(control, Proportion { n: 0, x: 0 }, &analysis), with(244));
        let alone = (a.p_value.expect("p"), c.p_value.expect("p"));
        assert!(a.significant && c.significant && alone.0 < alone.1, "each alone: {alone:?}");
        apply_correction(&mut [&mut a, &mut b, &mut c], Correction::Holm);
        // Holm over two tests: the smaller p doubled, the larger no smaller than that.
        let holm = (2.0 * alone.0, alone.1.max(2.0 * alone.0));
        assert_eq!((a.adjusted_p_value, c.adjusted_p_value), (Some(holm.0), Some(holm.1)));
        assert!(!a.significant && !c.significant, "{alone:?} are not significant as a family of two");
        let d = a.decision.as_ref().expect("decision");
        assert!(d.relative_ci.is_some_and(|[lo, _]| lo < 0.0), "the interval widens with the p-value: {d:?}");
        assert_eq!((b.adjusted_p_value, b.significant, b.decision.is_none()), (None, false, true));
    }
}
