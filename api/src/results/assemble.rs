//! Per-variant statistics in, the results response out; pure, so every number is
//! unit-testable.

use std::collections::HashMap;

use super::{
    warnings::warnings, ExperimentResults, Question, Srm, ValueSummary, VariantComparison, VariantResult, Window,
};
use crate::{
    domain::Experiment,
    domain::Phase,
    stats::{self, cuped::Paired, Analysis, Comparison, Moments, Proportion},
    storage::clickhouse::VariantStats,
};

/// The statistics of each variant in the experiment's order (zeros for a variant without
/// rows), with what is needed to compare them.
struct Arms<'a> {
    experiment: &'a Experiment,
    stats: Vec<VariantStats>,
    analysis: Analysis,
    question: &'a Question,
    /// CUPED's theta per metric, pooled over all variants: [conversion, value].
    thetas: [f64; 2],
}

pub fn assemble(
    experiment: &Experiment,
    rows: Vec<VariantStats>,
    question: Question,
    window: Window,
    phase: Phase,
) -> ExperimentResults {
    let arms = Arms::new(experiment, rows, &question, &window);
    let mut variants: Vec<VariantResult> = (0..experiment.variants.len()).map(|i| arms.variant(i)).collect();
    correct(&mut variants, &question);
    let srm = arms.srm();
    let warnings = warnings(&srm, &variants, &arms.inconsistent());
    ExperimentResults {
        experiment_id: experiment.id,
        value_property: question.value_property.clone(),
        event_type: question.event_type,
        window,
        phase,
        control: experiment.variants[0].name.clone(),
        alpha: question.alpha,
        correction: question.correction,
        significance: experiment.significance,
        sequential_tuning: experiment.sequential_tuning,
        cuped_days: question.cuped_days,
        target_lift: question.target_lift,
        segment: question.segment,
        srm,
        warnings,
        variants,
        explain: None,
        breakdown: None,
    }
}

/// Adjusts each metric's comparisons as a family (conversion and value separately).
fn correct(variants: &mut [VariantResult], question: &Question) {
    let mut conversions: Vec<&mut Comparison> = Vec::new();
    let mut values: Vec<&mut Comparison> = Vec::new();
    for comparison in variants.iter_mut().filter_map(|v| v.comparison.as_mut()) {
        conversions.push(&mut comparison.conversion);
        if let Some(value) = comparison.value.as_mut() {
            values.push(value);
        }
    }
    stats::apply_correction(&mut conversions, question.correction);
    stats::apply_correction(&mut values, question.correction);
}

/// How the experiment's comparisons are made for this question over this window.
pub(crate) fn analysis_of(experiment: &Experiment, question: &Question, window: &Window) -> Analysis {
    let started = window.from.max(experiment.created_at);
    Analysis {
        alpha: question.alpha,
        significance: experiment.significance,
        sequential_tuning: experiment.sequential_tuning,
        target_lift: question.target_lift,
        elapsed_days: (window.to - started).num_milliseconds().max(0) as f64 / 86_400_000.0,
        prior: question.prior,
    }
}

impl<'a> Arms<'a> {
    fn new(experiment: &'a Experiment, rows: Vec<VariantStats>, question: &'a Question, window: &Window) -> Self {
        let mut by_name: HashMap<String, VariantStats> = rows.into_iter().map(|r| (r.variant.clone(), r)).collect();
        let stats: Vec<VariantStats> =
            experiment.variants.iter().map(|v| by_name.remove(&v.name).unwrap_or_default()).collect();
        let analysis = analysis_of(experiment, question, window);
        let theta =
            |metric: fn(&VariantStats) -> Paired| stats::cuped::theta(&stats.iter().map(metric).collect::<Vec<_>>());
        let thetas = [theta(VariantStats::conversion_pairs), theta(VariantStats::value_pairs)];
        Self { experiment, stats, analysis, question, thetas }
    }

    /// What contradicts itself in each variant's counts (see [`VariantStats::consistent`]).
    fn inconsistent(&self) -> Vec<String> {
        (self.experiment.variants.iter().zip(&self.stats))
            .filter(|(_, s)| !s.consistent())
            .map(|(v, s)| {
                format!(
                    "variant `{}` has {} users, {} converted, {} converted before exposure, {} converted in both",
                    v.name, s.users, s.converted_users, s.pre_converted_users, s.converted_both
                )
            })
            .collect()
    }

    fn srm(&self) -> Srm {
        let observed: Vec<u64> = self.stats.iter().map(|s| s.users).collect();
        let weights: Vec<f64> = self.experiment.variants.iter().map(|v| v.allocation_percent).collect();
        let p_value = stats::srm_p_value(&observed, &weights);
        Srm { p_value, mismatch: p_value.is_some_and(|p| p < stats::SRM_THRESHOLD) }
    }

    fn cuped(&self, metric: fn(&VariantStats) -> Paired, theta: f64, treatment: &VariantStats) -> Option<stats::Cuped> {
        if self.question.cuped_days == 0 {
            return None;
        }
        stats::cuped::analyse(&metric(&self.stats[0]), &metric(treatment), theta, self.question.alpha)
    }

    fn comparison(&self, s: &VariantStats) -> VariantComparison {
        let control = &self.stats[0];
        VariantComparison {
            conversion: Comparison {
                cuped: self.cuped(VariantStats::conversion_pairs, self.thetas[0], s),
                ..stats::compare_proportions(control.proportion(), s.proportion(), &self.analysis)
            },
            value: self.question.value_property.is_some().then(|| Comparison {
                cuped: self.cuped(VariantStats::value_pairs, self.thetas[1], s),
                ..stats::compare_means(control.moments(), s.moments(), &self.analysis)
            }),
        }
    }

    fn variant(&self, i: usize) -> VariantResult {
        let (v, s) = (&self.experiment.variants[i], &self.stats[i]);
        VariantResult {
            name: v.name.clone(),
            allocation_percent: v.allocation_percent,
            users: s.users,
            converted_users: s.converted_users,
            conversion_rate: (s.users > 0 && s.consistent()).then(|| s.converted_users as f64 / s.users as f64),
            events: s.events,
            value: self.question.value_property.is_some().then(|| ValueSummary {
                sum: stats::finite(s.value_sum),
                mean: s.moments().mean(),
                std_dev: s.moments().variance().map(f64::sqrt),
            }),
            // Counts that contradict each other are reported (a warning), never computed.
            comparison: (i > 0 && s.consistent() && self.stats[0].consistent()).then(|| self.comparison(s)),
        }
    }
}

impl VariantStats {
    /// Counts that can be true together: converted and pre-converted users among the
    /// users, users converted in both periods among each.
    fn consistent(&self) -> bool {
        self.converted_users <= self.users
            && self.pre_converted_users <= self.users
            && self.converted_both <= self.converted_users.min(self.pre_converted_users)
    }

    fn proportion(&self) -> Proportion {
        Proportion { n: self.users, x: self.converted_users }
    }

    fn moments(&self) -> Moments {
        Moments { n: self.users, sum: self.value_sum, sum_sq: self.value_sum_sq }
    }

    /// Converted after exposure (y) and before it (x), as 0/1 per user.
    fn conversion_pairs(&self) -> Paired {
        let (y, x) = (self.converted_users as f64, self.pre_converted_users as f64);
        Paired {
            n: self.users,
            y_sum: y,
            y_sum_sq: y,
            x_sum: x,
            x_sum_sq: x,
            xy_sum: self.converted_both as f64,
            binary: true,
        }
    }

    /// Value after exposure (y) and before it (x) per user.
    fn value_pairs(&self) -> Paired {
        Paired {
            n: self.users,
            y_sum: self.value_sum,
            y_sum_sq: self.value_sum_sq,
            x_sum: self.pre_value_sum,
            x_sum_sq: self.pre_value_sum_sq,
            xy_sum: self.value_pre_value,
            binary: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::{results::WarningCode, stats::Correction};

    fn stats(variant: &str, users: u64, converted: u64) -> VariantStats {
        VariantStats {
            variant: variant.into(),
            users,
            converted_users: converted,
            events: converted,
            ..Default::default()
        }
    }

    fn question(correction: Correction) -> Question {
        Question {
            event_type: "purchase".into(),
            value_property: None,
            alpha: 0.05,
            correction,
            cuped_days: 14,
            target_lift: None,
            segment: None,
            prior: None,
        }
    }

    fn phase() -> Phase {
        Phase {
            phase: 1,
            started_at: Utc::now(),
            ended_at: None,
            allocations: sqlx::types::Json(Default::default()),
            reason: crate::domain::PhaseReason::Created,
        }
    }

    fn window() -> Window {
        Window { from: Utc::now(), to: Utc::now() }
    }

    #[test]
    fn several_treatments_are_each_compared_with_the_control_and_corrected() {
        let e = Experiment::test(&[3334, 3333, 3333]);
        let rows = vec![stats("v0", 1000, 100), stats("v1", 1000, 135), stats("v2", 1000, 138)];
        let none = assemble(&e, rows.clone(), question(Correction::None), window(), phase());
        let holm = assemble(&e, rows.clone(), question(Correction::Holm), window(), phase());
        let p = |r: &ExperimentResults, i: usize| {
            r.variants[i].comparison.as_ref().map(|c| c.conversion.clone()).expect("comparison")
        };
        assert!(none.variants[0].comparison.is_none());
        let (p1, p2) = (p(&none, 1).p_value.expect("p"), p(&none, 2).p_value.expect("p"));
        assert!(p1 < 0.05 && p2 < 0.05, "{p1} {p2}");
        assert!(p(&none, 1).significant);
        // Holm: the smaller p-value times 2, the larger times 1, kept monotone.
        let expected = holm_of_two(&[p1, p2]);
        assert_eq!(p(&holm, 1).adjusted_p_value, Some(expected[0]));
        assert_eq!(p(&holm, 2).adjusted_p_value, Some(expected[1]));
        assert_eq!(p(&holm, 1).p_value, Some(p1), "the raw p-value stays");
        assert_eq!(p(&holm, 1).significant, expected[0] < 0.05);
        assert_eq!(holm.correction, Correction::Holm);
    }

    fn holm_of_two(p: &[f64; 2]) -> [f64; 2] {
        let (lo, hi) = if p[0] <= p[1] { (0, 1) } else { (1, 0) };
        let mut out = [0.0; 2];
        out[lo] = (2.0 * p[lo]).min(1.0);
        out[hi] = p[hi].max(out[lo]).min(1.0);
        out
    }

    #[test]
    fn warnings_name_what_is_wrong() {
        let e = Experiment::test(&[5000, 5000]);
        let q = || question(Correction::Holm);
        let balanced = assemble(&e, vec![stats("v0", 1000, 100), stats("v1", 1000, 120)], q(), window(), phase());
        assert_eq!(balanced.warnings, vec![]);
        let skewed = assemble(&e, vec![stats("v0", 1000, 100), stats("v1", 1300, 120)], q(), window(), phase());
        assert!(skewed.srm.mismatch);
        assert_eq!(skewed.warnings.iter().map(|w| w.code).collect::<Vec<_>>(), [WarningCode::SampleRatioMismatch]);
        let early = assemble(&e, vec![stats("v0", 12, 0), stats("v1", 11, 3)], q(), window(), phase());
        let codes: Vec<_> = early.warnings.iter().map(|w| w.code).collect();
        assert_eq!(codes, [WarningCode::ZeroConversions, WarningCode::SmallSample, WarningCode::SmallSample]);
        assert!(early.warnings[0].message.contains("v0"));
    }

    #[test]
    fn inconsistent_counts_are_reported_not_computed() {
        let e = Experiment::test(&[5000, 5000]);
        let odd =
            assemble(&e, vec![stats("v0", 3, 5), stats("v1", 10, 2)], question(Correction::Holm), window(), phase());
        assert!(odd.warnings.iter().any(|w| w.code == WarningCode::SmallSample));
        assert!(odd.warnings.iter().any(|w| w.code == WarningCode::InconsistentCounts && w.message.contains("`v0`")));
        assert_eq!(odd.variants[0].conversion_rate, None, "5 of 3 users is no rate");
        assert!(odd.variants[1].comparison.is_none(), "nothing is compared with an inconsistent control");
        assert_eq!(odd.variants[1].conversion_rate, Some(0.2));
        // Pre-exposure counts are checked too.
        let mut pre = stats("v1", 10, 2);
        pre.pre_converted_users = 11;
        let odd = assemble(&e, vec![stats("v0", 10, 5), pre], question(Correction::Holm), window(), phase());
        let inconsistent: Vec<_> = odd.warnings.iter().filter(|w| w.code == WarningCode::InconsistentCounts).collect();
        assert!(inconsistent.len() == 1 && inconsistent[0].message.contains("`v1`"), "{inconsistent:?}");
        assert!(odd.variants[1].comparison.is_none() && odd.variants[1].conversion_rate.is_none());
    }

    #[test]
    fn constant_arms_and_a_non_positive_baseline_are_named() {
        let e = Experiment::test(&[5000, 5000]);
        let nobody =
            assemble(&e, vec![stats("v0", 100, 0), stats("v1", 100, 0)], question(Correction::Holm), window(), phase());
        let codes: Vec<_> = nobody.warnings.iter().map(|w| w.code).collect();
        assert!(codes.contains(&WarningCode::NoVariance), "{codes:?}");
        let conversion = &nobody.variants[1].comparison.as_ref().expect("compared").conversion;
        assert_eq!((conversion.absolute_ci, conversion.relative_ci), (None, None));
        let mut control = stats("v0", 100, 50);
        (control.value_sum, control.value_sum_sq) = (-1000.0, 100.0 * 109.0);
        let mut treatment = stats("v1", 100, 50);
        (treatment.value_sum, treatment.value_sum_sq) = (-500.0, 100.0 * 34.0);
        let mut q = question(Correction::Holm);
        q.value_property = Some("amount".into());
        let negative = assemble(&e, vec![control, treatment], q, window(), phase());
        assert!(
            negative.warnings.iter().any(|w| w.code == WarningCode::NonPositiveBaseline),
            "{:?}",
            negative.warnings
        );
        let value = negative.variants[1].comparison.as_ref().and_then(|c| c.value.as_ref()).expect("value compared");
        assert_eq!((value.relative_lift, value.bayesian.is_none()), (None, true));
    }
}
