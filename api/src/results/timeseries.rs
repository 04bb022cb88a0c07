//! Exposure and conversion over time: daily series per variant, with the results'
//! semantics (a user's exposure is the earliest, events count at or after it, each event
//! id once, inside the window; days are UTC dates).

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::{Segment, Window};
use crate::{domain::Experiment, storage::clickhouse::DayStats};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariantSeries {
    pub name: String,
    /// Users first exposed on each day.
    pub exposed_users: Vec<u64>,
    /// Users whose first conversion (first `event_type` event at or after their exposure)
    /// was on each day.
    pub converted_users: Vec<u64>,
    /// Exposed users up to and including each day; the last equals the results' `users`.
    pub cumulative_users: Vec<u64>,
    /// Converted users up to and including each day; the last equals the results'
    /// `converted_users`.
    pub cumulative_converted_users: Vec<u64>,
    /// `cumulative_converted_users / cumulative_users`; null before the first exposure.
    pub cumulative_conversion_rate: Vec<Option<f64>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timeseries {
    pub experiment_id: i64,
    pub event_type: String,
    pub window: Window,
    /// Only this segment's users; null: everyone.
    pub segment: Option<Segment>,
    /// Every UTC date of the window, `YYYY-MM-DD`, oldest first; each series has one
    /// number per day.
    #[schema(value_type = Vec<chrono::NaiveDate>)]
    pub days: Vec<String>,
    /// In the experiment's order; the first is the control.
    pub variants: Vec<VariantSeries>,
}

/// Lays the rows out on every day of the window, zeros where nothing happened; pure.
pub fn assemble(
    experiment: &Experiment,
    event_type: String,
    window: Window,
    segment: Option<Segment>,
    rows: Vec<DayStats>,
) -> Timeseries {
    let first = window.from.date_naive();
    let last = window.to.date_naive().max(first);
    let days: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= last).collect();
    let index: HashMap<String, usize> = days.iter().enumerate().map(|(i, d)| (d.to_string(), i)).collect();
    let mut per_variant: HashMap<&str, (Vec<u64>, Vec<u64>)> =
        experiment.variants.iter().map(|v| (v.name.as_str(), (vec![0; days.len()], vec![0; days.len()]))).collect();
    for row in &rows {
        if let (Some(series), Some(&i)) = (per_variant.get_mut(row.variant.as_str()), index.get(&row.day)) {
            series.0[i] += row.exposed_users;
            series.1[i] += row.converted_users;
        }
    }
    let variants = experiment
        .variants
        .iter()
        .map(|v| {
            let (exposed_users, converted_users) = per_variant.remove(v.name.as_str()).unwrap_or_default();
            let cumulative = |xs: &[u64]| {
                xs.iter()
                    .scan(0u64, |total, x| {
                        *total += x;
                        Some(*total)
                    })
                    .collect::<Vec<u64>>()
            };
            let cumulative_users = cumulative(&exposed_users);
            let cumulative_converted_users = cumulative(&converted_users);
            let cumulative_conversion_rate = cumulative_users
                .iter()
                .zip(&cumulative_converted_users)
                .map(|(&n, &x)| (n > 0).then(|| x as f64 / n as f64))
                .collect();
            VariantSeries {
                name: v.name.clone(),
                exposed_users,
                converted_users,
                cumulative_users,
                cumulative_converted_users,
                cumulative_conversion_rate,
            }
        })
        .collect();
    Timeseries {
        experiment_id: experiment.id,
        event_type,
        window,
        segment,
        days: days.iter().map(NaiveDate::to_string).collect(),
        variants,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn every_day_of_the_window_has_a_number_and_cumulative_rates_add_up() {
        let experiment = Experiment::test(&[5000, 5000]);
        let window = Window {
            from: Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().expect("date"),
            to: Utc.with_ymd_and_hms(2026, 3, 4, 8, 0, 0).single().expect("date"),
        };
        let row = |variant: &str, day: &str, exposed, converted| DayStats {
            variant: variant.into(),
            day: day.into(),
            exposed_users: exposed,
            converted_users: converted,
        };
        let rows = vec![
            row("v0", "2026-03-01", 4, 0),
            row("v0", "2026-03-03", 0, 2),
            row("v1", "2026-03-02", 5, 1),
            row("gone", "2026-03-02", 9, 9),
        ];
        let t = assemble(&experiment, "purchase".into(), window, None, rows);
        assert_eq!(t.days, ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]);
        assert_eq!(t.variants[0].exposed_users, [4, 0, 0, 0]);
        assert_eq!(t.variants[0].cumulative_converted_users, [0, 0, 2, 2]);
        assert_eq!(t.variants[0].cumulative_conversion_rate, [Some(0.0), Some(0.0), Some(0.5), Some(0.5)]);
        assert_eq!(t.variants[1].cumulative_users, [0, 5, 5, 5]);
        assert_eq!(t.variants[1].cumulative_conversion_rate, [None, Some(0.2), Some(0.2), Some(0.2)]);
    }
}
