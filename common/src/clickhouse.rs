//! The ClickHouse client, our versioned DDL, and which errors are worth retrying.
//!
//! The client speaks plain `RowBinary` over HTTP with validation and compression off: our
//! local ClickHouse (18.16) lacks `RowBinaryWithNamesAndTypes`, and with LZ4 responses its
//! fetches come back empty (see `shared/ENVIRONMENT.md`). Row types are checked against the
//! schema by the integration tests instead.
//!
//! `https://` URLs go through a hyper client of ours on rustls (see [`client`]): the
//! crate's own TLS features have no way to trust a private CA.

use std::time::Duration;

use clickhouse::{error::Error, Client, Compression, Row};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client as HyperClient},
    rt::TokioExecutor,
};
use serde::{Deserialize, Serialize};

use crate::{config::ClickHouseConfig, tls};

/// The files of `clickhouse/`, in the order they are applied, each once: applied versions
/// are recorded in `schema_migrations` (a test checks that every file is listed here).
/// Versions increase; a gap is allowed (branches reserve numbers), and a version listed
/// later than one already applied is still applied.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "001_events.sql", include_str!("../../clickhouse/001_events.sql")),
    (2, "002_exposures.sql", include_str!("../../clickhouse/002_exposures.sql")),
    (3, "003_exposures_earliest_wins.sql", include_str!("../../clickhouse/003_exposures_earliest_wins.sql")),
    (4, "004_exposure_attributes.sql", include_str!("../../clickhouse/004_exposure_attributes.sql")),
    (5, "005_exposures_inserted_at.sql", include_str!("../../clickhouse/005_exposures_inserted_at.sql")),
    (6, "006_rollup.sql", include_str!("../../clickhouse/006_rollup.sql")),
    (7, "007_event_properties.sql", include_str!("../../clickhouse/007_event_properties.sql")),
];

/// The schema on a cluster (`clickhouse.cluster`), a history of its own: `clickhouse/cluster/`.
pub const CLUSTER_MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "cluster/001_schema.sql", include_str!("../../clickhouse/cluster/001_schema.sql")),
    (2, "cluster/002_event_properties.sql", include_str!("../../clickhouse/cluster/002_event_properties.sql")),
];

const VERSIONS_COLUMNS: &str = "(version UInt32, name String, applied_at DateTime DEFAULT now())";

/// What `migrate` runs for `cfg`: one server's files, or the cluster's with `${cluster}` and
/// `${database}` filled in (both validated identifiers), and the statements that create the
/// database and the applied-versions table (on a cluster: every node a replica of it).
struct Plan {
    database: String,
    versions: String,
    migrations: Vec<(u32, &'static str, String)>,
}

impl Plan {
    fn of(cfg: &ClickHouseConfig) -> Plan {
        let (db, cluster) = (&cfg.database, &cfg.cluster);
        if cluster.is_empty() {
            return Plan {
                database: format!("CREATE DATABASE IF NOT EXISTS {db}"),
                versions: format!(
                    "CREATE TABLE IF NOT EXISTS schema_migrations {VERSIONS_COLUMNS} \
                     ENGINE = ReplacingMergeTree() ORDER BY version"
                ),
                migrations: MIGRATIONS.iter().map(|(v, name, text)| (*v, *name, (*text).to_owned())).collect(),
            };
        }
        let fill = |text: &str| text.replace("${cluster}", cluster).replace("${database}", db);
        Plan {
            database: format!("CREATE DATABASE IF NOT EXISTS {db} ON CLUSTER {cluster}"),
            versions: format!(
                "CREATE TABLE IF NOT EXISTS {db}.schema_migrations ON CLUSTER {cluster} {VERSIONS_COLUMNS} \
                 ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{db}/schema_migrations', \
                 '{{shard}}-{{replica}}') ORDER BY version"
            ),
            migrations: CLUSTER_MIGRATIONS.iter().map(|(v, name, text)| (*v, *name, fill(text))).collect(),
        }
    }
}

/// The client of `cfg`: plain HTTP as the crate does it, or HTTPS trusting
/// `clickhouse.ca_file` (else the public roots) with an optional client certificate. Fails
/// only when a TLS file cannot be used (they were checked at validation, so rarely).
/// On a cluster every statement carries `insert_distributed_sync = 1`: an insert into a
/// `Distributed` table answers once each shard's part is written on one of its replicas
/// (the other replica copies it), so the consumer commits offsets only for rows on disk.
pub fn client(cfg: &ClickHouseConfig) -> Result<Client, tls::SetupError> {
    let base = if cfg.url.starts_with("https://") {
        let hyper =
            HyperClient::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(2)).build(https(cfg)?);
        Client::with_http_client(hyper)
    } else {
        Client::default()
    };
    let client = base
        .with_url(&cfg.url)
        .with_user(&cfg.user)
        .with_password(cfg.password.expose())
        .with_database(&cfg.database)
        .with_compression(Compression::None)
        .with_validation(false);
    Ok(if cfg.cluster.is_empty() { client } else { client.with_option("insert_distributed_sync", "1") })
}

/// The connector of the crate's default client (TCP keep-alive 60 s; the pool above drops
/// idle connections after 2 s, below the server's 3 s keep-alive), over rustls.
/// `https_only`: the URL is https://, and a plain-text fallback must not exist.
fn https(cfg: &ClickHouseConfig) -> Result<hyper_rustls::HttpsConnector<HttpConnector>, tls::SetupError> {
    let roots = tls::roots("clickhouse.ca_file", cfg.ca_file.as_deref())?;
    let client_cert = match (&cfg.client_cert, &cfg.client_key) {
        (Some(cert), Some(key)) => {
            Some((("clickhouse.client_cert", cert.as_path()), ("clickhouse.client_key", key.as_path())))
        }
        _ => None,
    };
    let config = tls::client_config(roots, client_cert)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_keepalive(Some(Duration::from_secs(60)));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .wrap_connector(http))
}

#[derive(Row, Serialize, Deserialize)]
struct Applied {
    version: u32,
    name: String,
}

/// Creates the database and applies, in order, every migration not applied yet.
pub async fn migrate(cfg: &ClickHouseConfig) -> Result<Vec<&'static str>, Error> {
    // The database name was validated as a plain identifier by `Config::validate`.
    let db = client(cfg).map_err(|e| Error::InvalidParams(Box::new(e)))?;
    let plan = Plan::of(cfg);
    db.clone().with_database("default").query(&plan.database).execute().await?;
    db.query(&plan.versions).execute().await?;
    let applied: Vec<u32> = db.query("SELECT DISTINCT version FROM schema_migrations").fetch_all::<u32>().await?;
    let mut done = Vec::new();
    for (version, name, text) in plan.migrations.iter().filter(|(v, _, _)| !applied.contains(v)) {
        for statement in statements(text) {
            match db.query(&statement).execute().await {
                Err(e) if column_already_added(&statement, &e) => {
                    tracing::info!(file = name, %statement, "column already there (an interrupted run)");
                }
                result => result?,
            }
        }
        let mut insert = db.insert::<Applied>("schema_migrations").await?;
        insert.write(&Applied { version: *version, name: (*name).to_owned() }).await?;
        insert.end().await?;
        tracing::info!(file = name, "applied ClickHouse migration");
        done.push(*name);
    }
    Ok(done)
}

/// Whether `statement` adds one column that the table already has: a run of its
/// migration that was interrupted got that far. ClickHouse 18.16 has no `ADD COLUMN IF NOT
/// EXISTS`, so migrations add one column per statement and this takes the refusal as done.
/// 18.16 answers code 44 (ILLEGAL_COLUMN), current releases 15 (DUPLICATE_COLUMN).
pub fn column_already_added(statement: &str, e: &Error) -> bool {
    let upper = statement.to_ascii_uppercase();
    let one_add_column = upper.starts_with("ALTER TABLE ") && upper.matches("ADD COLUMN ").count() == 1;
    let already = matches!(e, Error::BadResponse(text) if text.contains("already exists"));
    one_add_column && already && matches!(error_code(e), Some(15 | 44))
}

/// Splits a DDL file on `;` at line ends and drops `--` comment lines.
pub fn statements(text: &str) -> Vec<String> {
    let without_comments: String =
        text.lines().filter(|line| !line.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    without_comments
        .split(";\n")
        .map(|s| s.trim().trim_end_matches(';').trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Readiness: does the server answer `SELECT 1`?
pub async fn ping(client: &Client) -> bool {
    client.query("SELECT 1").fetch_one::<u8>().await.is_ok()
}

/// ClickHouse's error code (`Code: 252. DB::Exception: ...`), when the server sent one.
pub fn error_code(e: &Error) -> Option<u32> {
    let Error::BadResponse(text) = e else { return None };
    let rest = text.split("Code: ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// What to do about a failed insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server, the network or the configuration: retry (with backoff) until it works;
    /// nothing is lost meanwhile. Unknown errors are treated as this.
    Transient,
    /// Some rows cannot be stored as they are (bad data for a column, a schema that does not
    /// fit them): find those rows and set them aside; the others can go in.
    Rows,
}

impl Failure {
    /// The `kind` label of `abtest_consumer_insert_failures_total`.
    pub fn label(self) -> &'static str {
        match self {
            Failure::Transient => "transient",
            Failure::Rows => "rows",
        }
    }
}

/// Codes that mean "these rows", as opposed to "this server right now" (names from
/// ClickHouse's `ErrorCodes.cpp`).
const ROW_ERRORS: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    16,  // NO_SUCH_COLUMN_IN_TABLE
    20,  // NUMBER_OF_COLUMNS_DOESNT_MATCH
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    33,  // CANNOT_READ_ALL_DATA (a row shorter than the table's columns)
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    395, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO (a MATERIALIZED throwIf check on a row)
];

/// Network errors, timeouts, too many parts, memory limits, read-only replicas, missing
/// tables or credentials (an operator fixes those) are transient; errors about the data
/// of rows are not. Like Vector's ClickHouse sink, retry only what can succeed later.
///
/// On a cluster an error can come from another server: a shard that went away while the
/// server we write through forwarded rows to it answers, e.g., code 33 "while receiving
/// packet from" it. Those name the network, not our rows, and are transient.
pub fn classify(e: &Error) -> Failure {
    let from_another_server =
        |text: &str| ["while receiving packet from", "NetException"].iter().any(|m| text.contains(m));
    match e {
        Error::Network(_) | Error::TimedOut => Failure::Transient,
        Error::SchemaMismatch(_) | Error::NotEnoughData => Failure::Rows,
        Error::BadResponse(text) if from_another_server(text) => Failure::Transient,
        _ => match error_code(e) {
            Some(code) if ROW_ERRORS.contains(&code) => Failure::Rows,
            _ => Failure::Transient,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `.sql` files of `clickhouse/<sub>` must be exactly `list`, in order.
    fn listed_in_order(sub: &str, list: &[(u32, &str, &str)]) {
        let dir = format!("{}/../clickhouse/{sub}", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("clickhouse/")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| format!("{sub}{n}"))
            .collect();
        files.sort();
        let listed: Vec<&str> = list.iter().map(|(_, name, _)| *name).collect();
        assert_eq!(files, listed, "a file in clickhouse/{sub} is not listed (it would never be applied)");
        for (i, (version, name, text)) in list.iter().enumerate() {
            let previous = if i == 0 { 0 } else { list[i - 1].0 };
            assert!(*version > previous, "{name}: versions increase");
            assert!(name.starts_with(&format!("{sub}{version:03}_")), "{name}: file name starts with its version");
            assert!(!statements(text).is_empty(), "{name}");
            assert!(!text.contains("abtest."), "{name}: must not hard-code the database");
        }
    }

    #[test]
    fn every_ddl_file_is_a_migration_in_order() {
        listed_in_order("", MIGRATIONS);
        listed_in_order("cluster/", CLUSTER_MIGRATIONS);
    }

    #[test]
    fn the_cluster_plan_runs_every_statement_on_the_cluster_with_names_filled_in() {
        let cfg = ClickHouseConfig { database: "db_x".into(), cluster: "c_y".into(), ..ClickHouseConfig::default() };
        let plan = Plan::of(&cfg);
        let all: Vec<String> = [plan.database.clone(), plan.versions.clone()]
            .into_iter()
            .chain(plan.migrations.iter().flat_map(|(_, _, text)| statements(text)))
            .collect();
        assert!(all.len() >= 6, "{all:?}");
        for statement in &all {
            assert!(statement.contains("ON CLUSTER c_y"), "{statement}");
            assert!(!statement.contains("${"), "a placeholder left: {statement}");
        }
        assert!(plan.versions.contains("'/clickhouse/tables/all/db_x/schema_migrations', '{shard}-{replica}'"));
        let single = Plan::of(&ClickHouseConfig::default());
        assert_eq!(single.migrations.len(), MIGRATIONS.len());
        assert!(!single.database.contains("CLUSTER"), "{}", single.database);
    }

    #[test]
    fn only_a_column_already_added_counts_as_done() {
        let old = Error::BadResponse("Code: 44, e.displayText() = DB::Exception: Cannot add column c: column with this name already exists, e.what() = DB::Exception".into());
        let current = Error::BadResponse("Code: 15. DB::Exception: Cannot add column `c`: column with this name already exists. (DUPLICATE_COLUMN) (version 26.9.2.1)".into());
        let add = "ALTER TABLE exposures ADD COLUMN c UInt8 DEFAULT 0";
        assert!(column_already_added(add, &old) && column_already_added(add, &current));
        let two = "ALTER TABLE exposures ADD COLUMN c UInt8, ADD COLUMN d UInt8";
        assert!(!column_already_added(two, &old), "a partly applied statement is not done");
        assert!(!column_already_added("CREATE TABLE t (a UInt8) ENGINE = Memory", &current));
        let other = Error::BadResponse("Code: 44. DB::Exception: Sorting key cannot contain nullable columns".into());
        assert!(!column_already_added(add, &other));
        assert!(!column_already_added(add, &Error::TimedOut));
    }

    #[test]
    fn errors_are_classified_by_code_and_kind() {
        let bad = |text: &str| Error::BadResponse(text.into());
        let old = bad("Code: 395, e.displayText() = DB::Exception: Value passed to 'throwIf' function is non zero, e.what() = DB::Exception");
        assert_eq!((error_code(&old), classify(&old)), (Some(395), Failure::Rows));
        let parts = bad("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)");
        assert_eq!((error_code(&parts), classify(&parts)), (Some(252), Failure::Transient));
        assert_eq!(classify(&bad("Code: 60. DB::Exception: Table abtest.events doesn't exist")), Failure::Transient);
        assert_eq!(classify(&Error::TimedOut), Failure::Transient);
        assert_eq!(classify(&bad("502 Bad Gateway")), Failure::Transient);
        // A shard gone while the server we write through forwarded rows to it (18.16's texts).
        let reset = bad("Code: 210, e.displayText() = DB::NetException: Connection reset by peer, while reading from socket (127.0.0.1:19233): while receiving packet from 127.0.0.1:19233: Insertion status: Wrote 1 blocks and 2452 rows on shard 0 replica 0");
        assert_eq!(classify(&reset), Failure::Transient);
        let cut = bad("Code: 33, e.displayText() = DB::Exception: Cannot read all data. Bytes read: 0. Bytes expected: 8.: while receiving packet from 127.0.0.1:19234, e.what() = DB::Exception");
        assert_eq!((error_code(&cut), classify(&cut)), (Some(33), Failure::Transient));
        let short_row = bad("Code: 33, e.displayText() = DB::Exception: Cannot read all data. Bytes read: 3. Bytes expected: 8., e.what() = DB::Exception");
        assert_eq!(classify(&short_row), Failure::Rows);
    }
}
