//! `?dimension=`: the same results per value of an exposure attribute (the most frequent
//! values, the rest as one `other` slice), corrected across every slice × treatment.

use serde::Serialize;

use super::{
    multi::{self, MetricResult, MetricsResults},
    ExperimentResults, Srm, VariantResult, Warning,
};
use crate::stats::{self, Comparison, Correction};

/// Most values of a dimension shown; the rest are one `other` slice.
pub const TOP_VALUES: u64 = 10;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Slice {
    /// The attribute's value (`""`: users whose exposure did not carry it); for `other`,
    /// every value not shown.
    pub value: String,
    pub other: bool,
    pub srm: Srm,
    pub warnings: Vec<Warning>,
    /// As the results' `variants`, for this slice's users only; p-values adjusted across
    /// every slice × treatment (conversion and value separately).
    pub variants: Vec<VariantResult>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Breakdown {
    pub dimension: String,
    pub slices: Vec<Slice>,
}

/// `slices`: each value (and whether it is `other`) with its single-slice results.
pub fn breakdown(dimension: &str, slices: Vec<(String, bool, ExperimentResults)>, correction: Correction) -> Breakdown {
    let mut slices: Vec<Slice> = slices
        .into_iter()
        .map(|(value, other, r)| Slice { value, other, srm: r.srm, warnings: r.warnings, variants: r.variants })
        .collect();
    let mut conversions: Vec<&mut Comparison> = Vec::new();
    let mut values: Vec<&mut Comparison> = Vec::new();
    for c in slices.iter_mut().flat_map(|s| s.variants.iter_mut()).filter_map(|v| v.comparison.as_mut()) {
        conversions.push(&mut c.conversion);
        values.extend(c.value.as_mut());
    }
    stats::apply_correction(&mut conversions, correction);
    stats::apply_correction(&mut values, correction);
    Breakdown { dimension: dimension.to_owned(), slices }
}

/// One slice of the metrics answer's breakdown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricSlice {
    /// As [`Slice::value`].
    pub value: String,
    pub other: bool,
    pub srm: Srm,
    /// Users per variant in this slice.
    pub users: Vec<u64>,
    /// As the answer's `metrics`, for this slice's users; decisions adjusted across every
    /// slice × metric × treatment of the decision, each guardrail across slices × treatments.
    pub metrics: Vec<MetricResult>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricsBreakdown {
    pub dimension: String,
    pub slices: Vec<MetricSlice>,
}

/// `slices`: each value (and whether it is `other`) with its metrics answer.
pub fn metrics_breakdown(
    dimension: &str,
    slices: Vec<(String, bool, MetricsResults)>,
    correction: Correction,
) -> MetricsBreakdown {
    let mut slices: Vec<MetricSlice> = slices
        .into_iter()
        .map(|(value, other, r)| MetricSlice { value, other, srm: r.srm, users: r.users, metrics: r.metrics })
        .collect();
    multi::decide(&mut slices.iter_mut().flat_map(|s| s.metrics.iter_mut()).collect::<Vec<_>>(), correction);
    MetricsBreakdown { dimension: dimension.to_owned(), slices }
}
