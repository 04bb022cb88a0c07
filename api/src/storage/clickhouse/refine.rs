//! What a catalog metric adds to an event type and a property.

/// A catalog metric's event filters, conversion window and capping; the rollup answers
/// only questions without any.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refine<'a> {
    /// `(JSON Pointer, text)`: only events whose property at the pointer is that text.
    pub filters: &'a [(String, String)],
    /// Only events within this many seconds after the user's first exposure.
    pub window_seconds: Option<u32>,
    pub cap: Option<Cap>,
}

impl Refine<'_> {
    pub fn is_none(&self) -> bool {
        self.filters.is_empty() && self.window_seconds.is_none() && self.cap.is_none()
    }

    /// Seconds after the first exposure that still count (without a window: beyond any).
    pub(super) fn horizon(&self) -> u64 {
        self.window_seconds.map_or(1 << 40, u64::from)
    }

    /// The filters as the statements match them against each event's leaves: pointer, NUL,
    /// text (18.16's lambdas cannot read a row's columns while walking constant arrays).
    pub(super) fn leaf_filters(&self) -> Vec<String> {
        self.filters.iter().map(|(k, v)| format!("{k}\0{v}")).collect()
    }
}

/// Winsorizing of per-user values (and their pre-exposure counterparts) from above.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cap {
    Absolute(f64),
    /// At this quantile (0 to 1) of the pooled per-user values.
    Percentile(f64),
}
