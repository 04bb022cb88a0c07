//! Results rows compared by the ClickHouse tests, and the databases they drop.

use api::storage::clickhouse::VariantStats;
use common::config::ClickHouseConfig;

/// Rows in variant order.
pub fn sorted(mut rows: Vec<VariantStats>) -> Vec<VariantStats> {
    rows.sort_by(|a, b| a.variant.cmp(&b.variant));
    rows
}

/// Row for row, every column exactly.
pub fn same(a: &[VariantStats], b: &[VariantStats]) -> bool {
    let key = |s: &VariantStats| {
        (
            (s.variant.clone(), s.users, s.converted_users, s.events, s.pre_converted_users, s.converted_both),
            [s.events_sum_sq, s.value_sum, s.value_sum_sq, s.pre_value_sum, s.pre_value_sum_sq, s.value_pre_value],
        )
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| key(x) == key(y))
}

/// Drops the databases of these configurations when dropped (at the end of a test, also
/// when it panics).
pub struct Dropped(pub Vec<ClickHouseConfig>);

impl Drop for Dropped {
    fn drop(&mut self) {
        let configs = std::mem::take(&mut self.0);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                for cfg in configs {
                    let server = common::clickhouse::client(&cfg).expect("client").with_database("default");
                    let on_cluster =
                        if cfg.cluster.is_empty() { String::new() } else { format!(" ON CLUSTER {}", cfg.cluster) };
                    let drop = format!("DROP DATABASE IF EXISTS {}{on_cluster}", cfg.database);
                    let _ = server.query(&drop).execute().await;
                }
            });
        })
        .join();
    }
}
