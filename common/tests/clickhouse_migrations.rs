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

#[derive(clickhouse::Row, serde::Deserialize, Debug, PartialEq)]
struct Attributed {
    variant: String,
    forced: u8,
    attribute_keys: Vec<String>,
    attribute_values: Vec<String>,
    exposure_id: String,
}

/// 004 adds columns one per statement; a run stopped after some of them completes when
/// `migrate` runs again (ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`), and rows
/// written before read the defaults.
#[tokio::test]
async fn an_interrupted_column_migration_completes_on_the_next_run() {
    let cfg = config();
    let _drop = Dropped(cfg.clone());
    let server = ours::client(&cfg).expect("client").with_database("default");
    server.query(&format!("CREATE DATABASE {}", cfg.database)).execute().await.expect("database");
    let ch = ours::client(&cfg).expect("client");
    // Versions 1 to 3 applied and recorded, then 004 stopped after two of its statements.
    ch.query(
        "CREATE TABLE schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now()) \
         ENGINE = ReplacingMergeTree() ORDER BY version",
    )
    .execute()
    .await
    .expect("versions");
    for (version, name, text) in &ours::MIGRATIONS[..3] {
        for statement in ours::statements(text) {
            ch.query(&statement).execute().await.expect("DDL 1 to 3");
        }
        ch.query("INSERT INTO schema_migrations (version, name) VALUES (?, ?)")
            .bind(version)
            .bind(name)
            .execute()
            .await
            .expect("record");
    }
    ch.query("INSERT INTO exposures (experiment_id, user_id, variant, exposed_at) VALUES (1, 'before', 'a', 1000)")
        .execute()
        .await
        .expect("old row");
    let (_, name, text) = ours::MIGRATIONS[3];
    assert_eq!(name, "004_exposure_attributes.sql");
    for statement in &ours::statements(text)[..2] {
        ch.query(statement).execute().await.expect("the first statements of 004");
    }

    // The next run completes 004 and applies the versions after it.
    let later: Vec<&str> = ours::MIGRATIONS[3..].iter().map(|(_, name, _)| *name).collect();
    assert_eq!(ours::migrate(&cfg).await.expect("the run after the interruption"), later);
    assert!(ours::migrate(&cfg).await.expect("again").is_empty());
    let row: Attributed = ch
        .query("SELECT variant, forced, attribute_keys, attribute_values, exposure_id FROM exposures WHERE user_id = 'before'")
        .fetch_one()
        .await
        .expect("the old row");
    let defaults = Attributed {
        variant: "a".into(),
        forced: 0,
        attribute_keys: vec![],
        attribute_values: vec![],
        exposure_id: "".into(),
    };
    assert_eq!(row, defaults);
}
