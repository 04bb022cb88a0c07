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
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Warning {
    pub code: WarningCode,
    pub message: String,
}

/// Users per variant below which the normal approximation is not trusted: it needs at
/// least this many converted and this many unconverted users (the usual n·p ≥ 5 rule).
const MIN_OUTCOMES: u64 = 5;

pub(super) fn warnings(srm: &Srm, variants: &[VariantResult]) -> Vec<Warning> {
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
