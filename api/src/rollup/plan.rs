//! When to seal what: pure arithmetic over seconds since the epoch (the ClickHouse server's
//! clock), unit-tested.

use std::time::Duration;

use common::config::RollupConfig;

use crate::storage::rollup::seal::EventSource;

const DAY: u32 = 86_400;

/// The rollup settings in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub interval: u32,
    pub lag: u32,
    pub k: u32,
    pub max_step: u32,
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1)
}

impl Plan {
    pub fn new(c: &RollupConfig) -> Self {
        Self {
            interval: secs(c.interval),
            lag: c.lag.as_secs().try_into().unwrap_or(u32::MAX),
            k: secs(c.future_bound),
            max_step: secs(c.max_step),
        }
    }

    /// Where seals may reach now: the last multiple of the interval at least `lag` ago.
    pub fn target(&self, now: u32) -> u32 {
        now.saturating_sub(self.lag) / self.interval * self.interval
    }

    /// The next interval after `sealed_to` (`None`: the metric has no seal yet), up to
    /// `target`, at most `max_step` long and ending on a multiple of it when it can. A
    /// metric's first seal starts at 0 and ends one step after its first event's step.
    pub fn next(&self, sealed_to: Option<u32>, first_event: Option<u32>, target: u32) -> Option<(u32, u32)> {
        let s0 = sealed_to.unwrap_or(0);
        if s0 >= target {
            return None;
        }
        let from = match sealed_to {
            Some(s) => s,
            None => match first_event {
                Some(first) => first / self.max_step * self.max_step,
                None => return Some((0, target)),
            },
        };
        let end = (from / self.max_step + 1).saturating_mul(self.max_step).max(from.saturating_add(self.interval));
        Some((s0, end.min(target)))
    }

    /// Level 1 reads `events_recent` when it holds every row inserted since `s0 - K` (from
    /// `floor` on), else the raw events.
    pub fn source(&self, s0: u32, floor: u32) -> EventSource {
        if s0 > 0 && s0.saturating_sub(self.k) >= floor {
            EventSource::Recent
        } else {
            EventSource::Final
        }
    }

    /// A metric seen for the first time may be sealed only once the recent tables cover
    /// `K` before the target: events inserted just before the floor may still become
    /// available after it.
    pub fn may_start(&self, target: u32, floor: u32) -> bool {
        target >= floor.saturating_add(self.k)
    }

    /// The new floor of the recent tables: a day before the oldest seal still advancing,
    /// less K, on a day boundary (they are partitioned by day). Without any: from now.
    pub fn floor(&self, oldest_seal: Option<u32>, now: u32) -> u32 {
        let from = oldest_seal.unwrap_or(now).min(now).saturating_sub(self.k);
        (from / DAY).saturating_sub(1) * DAY
    }
}

/// `YYYYMMDD` of a day (seconds since the epoch, UTC), as the partitions of the recent tables.
pub fn yyyymmdd(t: u32) -> u32 {
    let date = chrono::DateTime::from_timestamp(i64::from(t), 0).unwrap_or_default().date_naive();
    use chrono::Datelike;
    date.year() as u32 * 10_000 + date.month() * 100 + date.day()
}

/// `YYYYMM` of a time, as the partitions of `metric_log`.
pub fn yyyymm(t: u32) -> u32 {
    yyyymmdd(t) / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u32 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn plan() -> Plan {
        Plan::new(&RollupConfig::default())
    }

    #[test]
    fn seals_end_on_the_interval_grid_after_the_lag() {
        let p = plan();
        assert_eq!((p.interval, p.lag, p.k, p.max_step), (600, 300, 7200, 86_400));
        assert_eq!(p.target(T + 899), T);
        assert_eq!(p.target(T + 900), T + 600);
    }

    #[test]
    fn a_new_metric_starts_at_zero_and_catches_up_in_steps() {
        let p = plan();
        let target = T + 3 * DAY + 1200;
        // No events yet: one seal of everything.
        assert_eq!(p.next(None, None, target), Some((0, target)));
        // Events since the middle of day 0: [0, end of day 0), then whole days, then the rest.
        assert_eq!(p.next(None, Some(T + 5000), target), Some((0, T + DAY)));
        assert_eq!(p.next(Some(T + DAY), None, target), Some((T + DAY, T + 2 * DAY)));
        assert_eq!(p.next(Some(T + 3 * DAY), None, target), Some((T + 3 * DAY, target)));
        assert_eq!(p.next(Some(target), None, target), None);
        // Back on the grid after a seal that ended off the day boundary.
        assert_eq!(p.next(Some(T + 3 * DAY + 600), None, T + 5 * DAY), Some((T + 3 * DAY + 600, T + 4 * DAY)));
    }

    #[test]
    fn the_recent_tables_are_read_only_where_they_hold_everything() {
        let p = plan();
        assert_eq!(p.source(T, T - 7200), EventSource::Recent);
        assert_eq!(p.source(T, T - 7199), EventSource::Final);
        assert_eq!(p.source(0, 0), EventSource::Final);
        assert!(p.may_start(T + 7200, T) && !p.may_start(T + 7199, T));
    }

    #[test]
    fn the_floor_stays_a_day_behind_the_oldest_seal_less_k() {
        let p = plan();
        // Oldest seal 2026-01-03 01:00: less K = 2026-01-02 23:00 -> day 2026-01-02 -> floor 2026-01-01.
        assert_eq!(p.floor(Some(T + 2 * DAY + 3600), T + 10 * DAY), T);
        assert_eq!(p.floor(None, T + 10 * DAY + 7200), T + 9 * DAY);
        assert_eq!((yyyymmdd(T + 2 * DAY + 3600), yyyymm(T + 40 * DAY)), (20_260_103, 202_602));
    }
}
