//! ClickHouse migrations against the local stack's real ClickHouse: each applied once, in
//! order, recorded; an install made before migrations were versioned is brought forward
//! with its rows; the earliest exposure of a user survives merges.

use common::{clickhouse as ours, config::ClickHouseConfig};

fn config() -> ClickHouseConfig {
    ClickHouseConfig {
        url: std::env::var("ABTESTKIT_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into()),
        database: format!("abtest_migrations_{}", uuid::Uuid::new_v4().simple()),
        ..ClickHouseConfig::default()
    }
}

struct Dropped(ClickHouseConfig);

impl Drop for Dropped {
    fn drop(&mut self) {
        let cfg = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let server = ours::client(&cfg).expect("client").with_database("default");
                let _ = server.query(&format!("DROP DATABASE IF EXISTS {}", cfg.database)).execute().await;
            });
        })
        .join();
    }
}

#[derive(clickhouse::Row, serde::Deserialize, Debug, PartialEq)]
struct Exposure {
    variant: String,
    exposed_at: u32,
}

async fn exposures_of(ch: &clickhouse::Client, user: &str) -> Vec<Exposure> {
    ch.query("SELECT variant, toUInt32(exposed_at) AS exposed_at FROM exposures WHERE user_id = ? ORDER BY exposed_at")
        .bind(user)
        .fetch_all()
        .await
        .expect("exposures")
}

#[tokio::test]
async fn migrations_apply_once_in_order_and_are_recorded() {
    let cfg = config();
    let _drop = Dropped(cfg.clone());
    let applied = ours::migrate(&cfg).await.expect("first run");
    assert_eq!(applied.len(), ours::MIGRATIONS.len());
    assert!(ours::migrate(&cfg).await.expect("second run").is_empty(), "nothing applied twice");
    let ch = ours::client(&cfg).expect("client");
    let versions: Vec<u32> =
        ch.query("SELECT version FROM schema_migrations FINAL ORDER BY version").fetch_all().await.expect("versions");
    assert_eq!(versions, ours::MIGRATIONS.iter().map(|(v, _, _)| *v).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_unversioned_install_keeps_its_rows_and_the_earliest_exposure_wins_merges() {
    let cfg = config();
    let _drop = Dropped(cfg.clone());
    // An install from before versioned migrations: the first two files, applied by hand.
    let server = ours::client(&cfg).expect("client").with_database("default");
    server.query(&format!("CREATE DATABASE {}", cfg.database)).execute().await.expect("database");
    let ch = ours::client(&cfg).expect("client");
    for (_, _, text) in &ours::MIGRATIONS[..2] {
        for statement in ours::statements(text) {
            ch.query(&statement).execute().await.expect("old DDL");
        }
    }
    ch.query("INSERT INTO exposures (experiment_id, user_id, variant, exposed_at) VALUES (1, 'old', 'a', 1000)")
        .execute()
        .await
        .expect("old row");
    ours::migrate(&cfg).await.expect("migrate forward");
    assert_eq!(exposures_of(&ch, "old").await, vec![Exposure { variant: "a".into(), exposed_at: 1000 }], "rows kept");

    // A retried assignment writes a second, later exposure after the first: the merge must
    // keep the first (ReplacingMergeTree without a version keeps the last inserted).
    for (variant, at) in [("a", 1000), ("b", 2000)] {
        ch.query("INSERT INTO exposures (experiment_id, user_id, variant, exposed_at) VALUES (1, 'u', ?, ?)")
            .bind(variant)
            .bind(at)
            .execute()
            .await
            .expect("exposure");
    }
    ch.query("OPTIMIZE TABLE exposures FINAL").execute().await.expect("merge");
    assert_eq!(exposures_of(&ch, "u").await, vec![Exposure { variant: "a".into(), exposed_at: 1000 }]);
}
