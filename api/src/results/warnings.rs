//! What should make an analyst read the numbers with care.

use serde::Serialize;

use super::{Srm, VariantResult};
use crate::stats::SRM_THRESHOLD;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WarningCode {
    SampleRatioMismatch,
    ZeroConversions,
    SmallSample,
    /// The control's mean value is 0 or negative: no relative numbers for the value metric.
    NonPositiveBaseline,
    /// A treatment and the control are both constant on a metric: no interval, no test.
    NoVariance,
    /// A variant's counts contradict each other (more converted than exposed users).
    InconsistentCounts,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Warning {
    pub code: WarningCode,
    pub message: String,
}

/// Users per variant below which the normal approximation is not trusted: it needs at
/// least this many converted and this many unconverted users (the usual n·p ≥ 5 rule).
const MIN_OUTCOMES: u64 = 5;

/// `inconsistent`: what is wrong with each variant whose counts contradict each other.
pub(super) fn warnings(srm: &Srm, variants: &[VariantResult], inconsistent: &[String]) -> Vec<Warning> {
    let mut out = Vec::new();
    if srm.mismatch {
        out.push(Warning {
            code: WarningCode::SampleRatioMismatch,
            message: format!(
                "users per variant do not match the allocations (p = {:.2e} < {SRM_THRESHOLD}): check assignment and exposure logging before trusting any number",
                srm.p_value.unwrap_or(0.0),
            ),
        });
    }
    out.extend(inconsistent.iter().map(|what| Warning {
        code: WarningCode::InconsistentCounts,
        message: format!(
            "{what}: these counts cannot all be true, so its rate and its comparisons are not computed (the stored rows disagree; please report it)"
        ),
    }));
    out.extend(value_warnings(variants));
    for v in variants {
        if v.users > 0 && v.converted_users == 0 {
            out.push(Warning {
                code: WarningCode::ZeroConversions,
                message: format!("variant `{}` has no conversions yet", v.name),
            });
        }
        let unconverted = v.users.saturating_sub(v.converted_users);
        if v.converted_users < MIN_OUTCOMES || unconverted < MIN_OUTCOMES {
            out.push(Warning {
                code: WarningCode::SmallSample,
                message: format!(
                    "variant `{}` has {} users and {} conversions: too few for the normal approximation (at least {MIN_OUTCOMES} converted and {MIN_OUTCOMES} unconverted users)",
                    v.name, v.users, v.converted_users
                ),
            });
        }
    }
    out
}

/// The control's value mean is not positive, or a treatment and the control are both
/// constant (each at 0 % or 100 % conversion, or a value with no spread in both): no
/// interval then (and no test either when they are equal).
fn value_warnings(variants: &[VariantResult]) -> Vec<Warning> {
    let mut out = Vec::new();
    let Some((control, treatments)) = variants.split_first() else { return out };
    if !treatments.is_empty() && control.value.as_ref().and_then(|v| v.mean).is_some_and(|m| m <= 0.0) {
        out.push(Warning {
            code: WarningCode::NonPositiveBaseline,
            message: format!(
                "the control `{}` has a mean value of 0 or less: relative lifts, relative intervals and chance to beat are not defined for the value (the absolute numbers are)",
                control.name
            ),
        });
    }
    let constant_rate = |v: &VariantResult| v.users > 0 && (v.converted_users == 0 || v.converted_users == v.users);
    let constant_value = |v: &VariantResult| v.value.as_ref().and_then(|s| s.std_dev) == Some(0.0);
    for t in treatments {
        for (metric, constant) in [
            ("conversion", constant_rate(control) && constant_rate(t)),
            ("value", constant_value(control) && constant_value(t)),
        ] {
            if constant {
                out.push(Warning {
                    code: WarningCode::NoVariance,
                    message: format!(
                        "variant `{}` and the control `{}` are both constant on {metric}: no interval until they vary (and no test while they are equal)",
                        t.name, control.name
                    ),
                });
            }
        }
    }
    out
}
