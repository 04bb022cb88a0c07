//! Query parameters as types: each parses and checks itself, so a bad value is a 400
//! naming the parameter (see `server::query`), and the OpenAPI document states the same
//! rules.

use std::fmt;

use common::event::{length_ok, MAX_ATTRIBUTE_NAME_CHARS, MAX_ATTRIBUTE_VALUE_CHARS, MAX_TYPE_CHARS};
use serde::Deserialize;
use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

use crate::{results::Segment, stats::Correction};

/// Declares a newtype parsed from the query string's text by `$parse`, which returns the
/// value or the message for the client. Numbers may have blanks around them; text is
/// taken as it is (an event type may end with a blank, as events may).
macro_rules! param {
    ($(#[$doc:meta])* $name:ident($inner:ty), $parse:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(pub $inner);

        impl TryFrom<String> for $name {
            type Error = Message;
            fn try_from(text: String) -> Result<Self, Message> {
                let parse: fn(&str) -> Result<$inner, &'static str> = $parse;
                parse(&text).map($name).map_err(Message)
            }
        }
    };
}

/// A parameter's error message.
#[derive(Debug)]
pub struct Message(&'static str);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

param!(
    /// An event type: 1 to 128 characters.
    EventType(String),
    |t| if length_ok(t, MAX_TYPE_CHARS) { Ok(t.to_owned()) } else { Err("event_type must be 1 to 128 characters") }
);

param!(
    /// A property name: 1 to 128 characters.
    PropertyName(String),
    |p| if length_ok(p, MAX_PROPERTY_CHARS) { Ok(p.to_owned()) } else { Err("value_property must be 1 to 128 characters") }
);

param!(
    /// An attribute name: 1 to 128 characters, no NUL.
    AttributeName(String),
    |a| if length_ok(a, MAX_ATTRIBUTE_NAME_CHARS) && !a.contains('\0') { Ok(a.to_owned()) } else { Err("attribute must be 1 to 128 characters, no NUL") }
);

param!(
    /// An attribute value: at most 1024 characters.
    AttributeValue(String),
    |v| if v.chars().count() <= MAX_ATTRIBUTE_VALUE_CHARS { Ok(v.to_owned()) } else { Err("attribute_value is at most 1024 characters") }
);

param!(
    /// Whole days, 1 to 3650.
    Days(u32),
    |d| d.trim().parse().ok().filter(|d| (1..=MAX_DAYS).contains(d)).ok_or("last_day must be a whole number of days from 1 to 3650")
);

param!(
    /// A significance level in (0, 0.5].
    Alpha(f64),
    |a| a.trim().parse().ok().filter(|a: &f64| *a > 0.0 && *a <= 0.5).ok_or("alpha must be a number in (0, 0.5]")
);

param!(
    /// Days before exposure for CUPED, 0 to 365.
    CupedDays(u32),
    |d| d.trim().parse().ok().filter(|d| *d <= 365).ok_or("cuped_days must be a whole number of days from 0 to 365")
);

param!(
    /// A non-zero relative lift of at most 100 (10 000 %) either way.
    TargetLift(f64),
    |t| {
        t.trim()
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite() && *t != 0.0 && t.abs() <= 100.0)
            .ok_or("target_lift must be a non-zero relative lift, e.g. 0.05 for +5 %")
    }
);

param!(
    /// A page size, 1 to 200.
    Limit(i64),
    |l| l.trim().parse().ok().filter(|l| (1..=200).contains(l)).ok_or("limit must be 1 to 200")
);

param!(
    /// An experiment id to page after, 0 or more.
    After(i64),
    |a| a.trim().parse().ok().filter(|a| *a >= 0).ok_or("after must be a whole number, 0 or more")
);

param!(
    /// A phase of the experiment, 1 or more.
    PhaseNumber(i32),
    |p| p.trim().parse().ok().filter(|p| *p >= 1).ok_or("phase must be a whole number, 1 or more")
);

pub const MAX_PROPERTY_CHARS: usize = 128;
pub const MAX_DAYS: u32 = 3650;
/// CUPED's default window before exposure, in days.
pub const DEFAULT_CUPED_DAYS: u32 = 14;
/// `/event_types`' default window, in days.
pub const DEFAULT_EVENT_TYPE_DAYS: u32 = 30;

/// `target_lift`: from -100 to 100, not 0 (JSON Schema has no "not equal": two ranges).
fn target_lift_schema() -> Schema {
    let range =
        || ObjectBuilder::new().schema_type(Type::Number).format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)));
    AnyOfBuilder::new()
        .description(Some("A relative lift (e.g. `0.05` for +5 %) for `power.days_to_target`; not 0."))
        .item(range().minimum(Some(-100)).exclusive_maximum(Some(0)))
        .item(range().exclusive_minimum(Some(0)).maximum(Some(100)))
        .build()
        .into()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultsParams {
    /// The conversion event, e.g. `purchase`; without it, every catalog metric of the
    /// experiment (see `metrics` on the experiment).
    #[param(value_type = Option<String>, min_length = 1, max_length = 128, example = "purchase")]
    pub event_type: Option<EventType>,
    /// Only exposures and events of the last N days (of the phase).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    pub last_day: Option<Days>,
    /// The phase to analyse (default: the current one): users first exposed in it, against
    /// its allocations, up to its end.
    #[param(value_type = Option<i32>, minimum = 1)]
    pub phase: Option<PhaseNumber>,
    /// A numeric property summed per user as the value metric, e.g. `order_value`.
    #[param(value_type = Option<String>, min_length = 1, max_length = 128, example = "order_value")]
    pub value_property: Option<PropertyName>,
    /// Significance level; default 0.05.
    #[param(value_type = Option<f64>, exclusive_minimum = 0, maximum = 0.5)]
    pub alpha: Option<Alpha>,
    /// Adjustment of the p-values of several treatments (default `holm`).
    #[param(inline)]
    pub correction: Option<Correction>,
    /// Days before each user's exposure whose events are the CUPED covariate (default 14;
    /// 0 turns CUPED off).
    #[param(value_type = Option<u32>, minimum = 0, maximum = 365)]
    pub cuped_days: Option<CupedDays>,
    /// A relative lift (e.g. `0.05` for +5 %) for `power.days_to_target`; not 0.
    #[param(schema_with = target_lift_schema)]
    pub target_lift: Option<TargetLift>,
    /// Only users whose exposure carried this attribute (sent with the assignment request
    /// or `POST /exposures`) with the value `attribute_value`, e.g. `country`.
    #[param(value_type = Option<String>, min_length = 1, max_length = 128, example = "country")]
    pub attribute: Option<AttributeName>,
    /// The value `attribute` must have, as text (numbers as `30`, booleans as `true`).
    #[param(value_type = Option<String>, max_length = 1024, example = "DE")]
    pub attribute_value: Option<AttributeValue>,
    /// Add `explain`: the statements run, the sufficient statistics and a Python program
    /// (scipy) that recomputes every p-value and interval (without `event_type`: every
    /// metric's decision and guardrail status).
    pub explain: Option<bool>,
    /// Add `breakdown`: the results (without `event_type`: every metric) per value of this
    /// exposure attribute (the 10 most frequent, the rest as `other`), e.g. `country`; not
    /// with `attribute`.
    #[param(value_type = Option<String>, min_length = 1, max_length = 128, example = "country")]
    pub dimension: Option<AttributeName>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimeseriesParams {
    /// The conversion event, e.g. `purchase`.
    #[param(value_type = String, min_length = 1, max_length = 128, example = "purchase")]
    pub event_type: EventType,
    /// Only exposures and events of the last N days (of the phase).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    pub last_day: Option<Days>,
    /// The phase to analyse (default: the current one): users first exposed in it, against
    /// its allocations, up to its end.
    #[param(value_type = Option<i32>, minimum = 1)]
    pub phase: Option<PhaseNumber>,
    /// Only users whose exposure carried this attribute (sent with the assignment request
    /// or `POST /exposures`) with the value `attribute_value`, e.g. `country`.
    #[param(value_type = Option<String>, min_length = 1, max_length = 128, example = "country")]
    pub attribute: Option<AttributeName>,
    /// The value `attribute` must have, as text (numbers as `30`, booleans as `true`).
    #[param(value_type = Option<String>, max_length = 1024, example = "DE")]
    pub attribute_value: Option<AttributeValue>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventTypesParams {
    /// Event types seen in the last N days (default 30).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    pub last_day: Option<Days>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    /// Return experiments with an id greater than this (the previous page's `next_after`).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 9223372036854775807_i64)]
    pub after: Option<After>,
}

/// `attribute` and `attribute_value` together: the users of one segment; one without the
/// other is a 400 naming the missing one.
pub fn segment(
    attribute: Option<AttributeName>,
    value: Option<AttributeValue>,
) -> Result<Option<Segment>, server::ApiError> {
    let missing = |name: &str| {
        let message = "attribute and attribute_value go together";
        server::ApiError::field(server::ErrorCode::InvalidQuery, name, message)
    };
    match (attribute, value) {
        (Some(a), Some(v)) => Ok(Some(Segment { attribute: a.0, value: v.0 })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(missing("attribute_value")),
        (None, Some(_)) => Err(missing("attribute")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use server::{query, ApiError};

    fn field(e: ApiError) -> Option<String> {
        match e {
            ApiError::Invalid { field, .. } => field,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn each_parameter_checks_itself_and_is_named_when_wrong() {
        let ok: ResultsParams =
            query::parse("event_type=purchase&last_day=%207&alpha=0.1&correction=bh&cuped_days=0&target_lift=-0.5")
                .expect("valid");
        assert_eq!((ok.last_day, ok.alpha, ok.correction), (Some(Days(7)), Some(Alpha(0.1)), Some(Correction::Bh)));
        // Without event_type: every catalog metric (the route answers 400 when there is none).
        query::parse::<ResultsParams>("last_day=1").expect("event_type is optional");
        for (query, name) in [
            ("event_type=", "event_type"),
            ("phase=0", "phase"),
            ("event_type=x&last_day=0", "last_day"),
            ("event_type=x&last_day=1.5", "last_day"),
            ("event_type=x&alpha=0.6", "alpha"),
            ("event_type=x&alpha=nan", "alpha"),
            ("event_type=x&correction=bonferroni", "correction"),
            ("event_type=x&cuped_days=366", "cuped_days"),
            ("event_type=x&target_lift=0", "target_lift"),
            ("event_type=x&target_lift=inf", "target_lift"),
        ] {
            assert_eq!(field(query::parse::<ResultsParams>(query).expect_err(query)), Some(name.into()), "{query}");
        }
        let long = format!("event_type={}", "é".repeat(129));
        assert_eq!(field(query::parse::<ResultsParams>(&long).expect_err("long")), Some("event_type".into()));
        query::parse::<ResultsParams>(&format!("event_type={}", "é".repeat(128))).expect("128 characters");
    }
}
