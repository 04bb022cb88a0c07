//! The values a dimension breakdown shows (`?dimension=`).

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::{trace, Result, StatsQuery};

/// The most frequent values of an exposure attribute among the users first exposed in the
/// window (each user's first exposure), most frequent first; `''` for users without it.
pub const TOP_VALUES_SQL: &str = "
SELECT value, toUInt64(count()) AS users
FROM
(
    SELECT user_id, argMin(attribute_values[indexOf(attribute_keys, ?)], exposed_at) AS value, min(exposed_at) AS fe
    FROM exposures
    WHERE experiment_id = ? AND exposed_at <= toDateTime(?) AND forced = 0
    GROUP BY user_id
    HAVING fe >= toDateTime(?)
) AS firsts
GROUP BY value
ORDER BY users DESC, value
LIMIT ?";

#[derive(Debug, Clone, Row, Deserialize)]
pub struct ValueCount {
    pub value: String,
    pub users: u64,
}

/// Up to `limit` values of `attribute` by users, over the window of `q`.
pub async fn top_values(ch: &Client, q: &StatsQuery<'_>, attribute: &str, limit: u64) -> Result<Vec<ValueCount>> {
    let query = ch.query(TOP_VALUES_SQL).bind(attribute).bind(q.experiment_id).bind(q.to).bind(q.from).bind(limit);
    Ok(trace::record(query).fetch_all::<ValueCount>().await?)
}
