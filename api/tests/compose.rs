//! docker-compose.yml and .env.example checked against the code (no Docker engine here):
//! every ABTEST_ variable they set is a real configuration key with a valid value, the
//! services run binaries that exist, and ports and health checks agree with the config.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use common::Config;
use figment::Jail;
use serde_yaml::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn compose() -> Value {
    compose_file("docker-compose.yml")
}

/// A compose file with its merge keys applied.
fn compose_file(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{ROOT}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut value: Value = serde_yaml::from_str(&text).expect("valid YAML");
    value.apply_merge().expect("merge keys");
    for (_, service) in value["services"].as_mapping_mut().expect("services") {
        if let Some(env) = service.get_mut("environment") {
            env.apply_merge().expect("merge keys");
        }
    }
    value
}

/// A service's environment (merge keys applied by `compose()`).
fn environment(service: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(Value::Mapping(env)) = service.get("environment") {
        for (k, v) in env {
            out.insert(k.as_str().expect("string key").to_owned(), scalar(v));
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// The image our services run, built once by the `init` service.
const OUR_IMAGE: &str = "abtest:latest";

/// The operator's .env as these tests assume it: only what compose requires.
const OPERATOR_KEYS: &str = r#"["an-operators-own-key"]"#;

/// `${NAME:-default}` and `${NAME:?message}` as compose resolves them with an .env holding
/// `dotenv`: the variable when set, else the default, else (`:?`) compose's error.
fn resolve_with(value: &str, dotenv: &BTreeMap<&str, &str>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let inner = &rest[start + 2..end];
        let (name, fallback) = inner.split_once(":-").or_else(|| inner.split_once(":?")).unwrap_or((inner, ""));
        match dotenv.get(name) {
            Some(v) => out.push_str(v),
            None if inner.contains(":?") => return Err(format!("compose: {name}: {fallback}")),
            None => out.push_str(fallback),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(value: &str) -> String {
    let dotenv = BTreeMap::from([("ABTEST_AUTH__API_KEYS", OPERATOR_KEYS)]);
    resolve_with(value, &dotenv).unwrap_or_else(|e| panic!("{e}"))
}

/// Loads a Config from exactly these ABTEST_ variables, as a binary would.
#[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
fn load(vars: &BTreeMap<String, String>) -> Result<Config, String> {
    let mut result = Err(String::new());
    Jail::expect_with(|jail| {
        for (k, v) in vars {
            jail.set_env(k, v);
        }
        result = Config::from_figment(Config::figment(jail.directory().join("none.toml"))).map_err(|e| e.to_string());
        Ok(())
    });
    result
}

fn abtest_vars(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.iter().filter(|(k, _)| k.starts_with("ABTEST_")).map(|(k, v)| (k.clone(), resolve(v))).collect()
}

#[test]
fn every_service_we_build_runs_a_real_binary_with_valid_configuration() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let names: BTreeSet<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for wanted in ["kafka", "clickhouse", "postgres", "init", "ingest", "consumer", "api"] {
        assert!(names.contains(wanted), "service {wanted} missing from docker-compose.yml");
    }
    for (name, service) in services {
        let name = name.as_str().expect("name");
        let vars = abtest_vars(&environment(service));
        if vars.is_empty() {
            continue;
        }
        let config = load(&vars).unwrap_or_else(|e| panic!("service {name}: {e}"));
        assert_eq!(service["image"], Value::from(OUR_IMAGE), "{name} sets ABTEST_ variables, so it runs our image");
        let command: Vec<String> = service["command"].as_sequence().expect("command").iter().map(scalar).collect();
        let binary = command[0].as_str();
        assert!(
            std::path::Path::new(&format!("{ROOT}/{binary}/src/main.rs")).exists(),
            "{name} runs `{binary}`, not one of our binaries"
        );
        if name == "init" {
            assert_eq!(command, ["api", "migrate"]);
            continue;
        }
        assert_eq!(binary, name, "service {name} runs {binary}");
        let listen = match name {
            "api" => config.api.listen,
            "ingest" => config.ingest.listen,
            "consumer" => config.consumer.listen,
            other => panic!("unexpected service {other}"),
        };
        assert!(listen.ip().is_unspecified(), "{name} must listen on 0.0.0.0 inside its container");
        assert!(service.get("ports").is_none(), "{name} publishes no host port (a second instance could not start)");
        let health = format!("{:?}", service["healthcheck"]["test"]);
        assert!(
            health.contains(&format!("127.0.0.1:{}/readyz", listen.port())),
            "{name}: healthcheck must probe /readyz: {health}"
        );
        assert_eq!(config.kafka.brokers.bootstrap(), "kafka:9092");
        assert!(config.postgres.url.expose().contains("@postgres:5432/"));
        assert_eq!(config.clickhouse.url, "http://clickhouse:8123");
    }
    // Compose requires the operator's own keys: without them it refuses to start, and the
    // local stack's key is refused by the services (they listen on 0.0.0.0).
    let api_env = environment(&services[&Value::from("api")]);
    let keys = &api_env["ABTEST_AUTH__API_KEYS"];
    let missing = resolve_with(keys, &BTreeMap::new()).expect_err("compose must require ABTEST_AUTH__API_KEYS");
    assert!(missing.contains("ABTEST_AUTH__API_KEYS"), "{missing}");
    let config = load(&abtest_vars(&api_env)).expect("api config");
    assert_eq!(config.auth.api_keys[0].expose(), "an-operators-own-key");
    for service in ["api", "ingest"] {
        let mut vars = abtest_vars(&environment(&services[&Value::from(service)]));
        vars.insert("ABTEST_AUTH__API_KEYS".into(), format!(r#"["{}"]"#, common::config::DEV_API_KEY));
        let err = load(&vars).expect_err("the local stack's key on 0.0.0.0");
        assert!(err.contains("auth.api_keys"), "{service}: {err}");
    }
}

/// The `proxy` service publishes the api's and ingest's ports and sends each to the service
/// listening there (compose/nginx.conf), leaving body limits to the services.
#[test]
fn the_proxy_sends_each_published_port_to_the_service_that_listens_there() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let proxy = &services[&Value::from("proxy")];
    assert!(proxy["image"].as_str().expect("image").starts_with("nginx:1."), "nginx's official image");
    let mount = scalar(&proxy["volumes"][0]);
    let (file, target) = mount.split_once(':').expect("volume");
    assert!(target.starts_with("/etc/nginx/nginx.conf"), "{mount}");
    let conf = std::fs::read_to_string(format!("{ROOT}/{}", file.trim_start_matches("./"))).expect("nginx.conf");
    let published: Vec<String> = proxy["ports"].as_sequence().expect("ports").iter().map(scalar).collect();
    for name in ["api", "ingest"] {
        let config = load(&abtest_vars(&environment(&services[&Value::from(name)]))).expect("config");
        let port = if name == "api" { config.api.listen.port() } else { config.ingest.listen.port() };
        assert!(published.contains(&format!("{port}:{port}")), "{name}: host port {port} published: {published:?}");
        // The server block listening on that port proxies to the service on its listen port.
        let block = conf.split("server {").find(|b| b.contains(&format!("listen {port};"))).expect("server block");
        assert!(block.contains(&format!("http://{name}:{port};")), "{name}: {block}");
        assert!(block.contains("proxy_pass $"), "{name}: resolved per request (instances come and go)");
        let timeout = conf.split("proxy_read_timeout ").nth(1).and_then(|t| t.split(';').next()).expect("timeout");
        let bound = config.api.request_timeout.max(config.ingest.ack_timeout);
        assert!(duration(timeout) > bound, "proxy_read_timeout {timeout} must exceed the services' own bound");
    }
    for line in ["resolver 127.0.0.11", "client_max_body_size 0;", "proxy_request_buffering off;"] {
        assert!(conf.contains(line), "nginx.conf lacks `{line}`");
    }
}

/// docker-compose.yml with docker-compose.cluster.yml over it, merged as compose merges an
/// override file: mappings key by key (environment, depends_on, ...), `volumes` by mount
/// target (the override's wins), other sequences (`ports`, ...) appended, scalars and
/// `command` replaced.
fn cluster_compose() -> Value {
    fn target(volume: &Value) -> String {
        scalar(volume).split(':').nth(1).unwrap_or_default().to_owned()
    }
    fn merge(key: &str, base: &mut Value, over: &Value) {
        match (base, over) {
            (Value::Mapping(b), Value::Mapping(o)) => {
                for (k, v) in o {
                    match b.get_mut(k) {
                        Some(existing) => merge(k.as_str().unwrap_or_default(), existing, v),
                        None => {
                            b.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (Value::Sequence(b), Value::Sequence(o)) if key == "volumes" => {
                b.retain(|mine| !o.iter().any(|theirs| target(theirs) == target(mine)));
                b.extend(o.iter().cloned());
            }
            (Value::Sequence(b), Value::Sequence(o)) if key != "command" && key != "entrypoint" => {
                b.extend(o.iter().filter(|v| !b.contains(v)).cloned().collect::<Vec<_>>());
            }
            (b, o) => *b = o.clone(),
        }
    }
    let mut base = compose();
    merge("services", &mut base["services"], &compose_file("docker-compose.cluster.yml")["services"]);
    base
}

/// The cluster form: 3 Kafka nodes in one KRaft quorum, topics our services create with
/// replication 3 and min.insync.replicas 2 (so one broker may be down), the 2 x 2
/// ClickHouse cluster of compose/clickhouse-cluster.xml under the name the services use,
/// each node a distinct (shard, replica), and the rollup off (it refuses a cluster).
#[test]
fn the_cluster_file_is_three_brokers_and_two_shards_of_two_replicas_that_the_services_use() {
    let compose = cluster_compose();
    let services = compose["services"].as_mapping().expect("services");
    let named = |prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = services
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| *k == prefix || k.starts_with(&format!("{prefix}-")))
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    let kafkas = named("kafka");
    assert_eq!(kafkas.len(), 3, "{kafkas:?}");
    let voters: Vec<String> = kafkas
        .iter()
        .map(|k| environment(&services[&Value::from(k.as_str())]))
        .map(|env| {
            assert_eq!(env["KAFKA_MIN_INSYNC_REPLICAS"], "2");
            assert_eq!(env["CLUSTER_ID"], "MkU3OEVBNTcwNTJENDM2Qg", "one KRaft cluster");
            env["KAFKA_CONTROLLER_QUORUM_VOTERS"].clone()
        })
        .collect();
    for (i, k) in kafkas.iter().enumerate() {
        let env = environment(&services[&Value::from(k.as_str())]);
        assert_eq!(env["KAFKA_NODE_ID"], (i + 1).to_string(), "{k}");
        assert_eq!(env["KAFKA_ADVERTISED_LISTENERS"], format!("PLAINTEXT://{k}:9092"));
        assert!(voters[0].contains(&format!("{}@{k}:9093", i + 1)), "{k} is a voter: {}", voters[0]);
        assert_eq!(voters[i], voters[0], "one voter list");
    }
    let xml = std::fs::read_to_string(format!("{ROOT}/compose/clickhouse-cluster.xml")).expect("cluster xml");
    let remote_servers = xml.split("</remote_servers>").next().expect("remote_servers");
    let shards: Vec<Vec<String>> = remote_servers
        .split("<shard>")
        .skip(1)
        .map(|s| s.split("<host>").skip(1).map(|h| h.split('<').next().unwrap_or_default().to_owned()).collect())
        .collect();
    let nodes = named("clickhouse");
    assert_eq!(shards.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2], "2 shards x 2 replicas: {shards:?}");
    assert_eq!(shards.concat(), nodes, "the cluster's hosts are the compose services");
    let mut macros = BTreeSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let svc = &services[&Value::from(node.as_str())];
        let env = environment(svc);
        assert_eq!(env["CLICKHOUSE_SHARD"], format!("0{}", i / 2 + 1), "{node} in shard {}", i / 2 + 1);
        macros.insert((env["CLICKHOUSE_SHARD"].clone(), env["CLICKHOUSE_REPLICA"].clone()));
        assert_eq!(svc["hostname"], Value::from(node.as_str()), "{node}: replicas fetch parts by hostname");
        let volumes = format!("{:?}", svc["volumes"]);
        assert!(
            volumes.contains("clickhouse-cluster.xml") && volumes.contains(":/var/lib/clickhouse"),
            "{node}: {volumes}"
        );
    }
    assert_eq!(macros.len(), 4, "each node a distinct (shard, replica)");
    for name in ["init", "ingest", "consumer", "api"] {
        let config = load(&abtest_vars(&environment(&services[&Value::from(name)])))
            .unwrap_or_else(|e| panic!("{name} on the cluster: {e}"));
        let brokers = config.kafka.brokers.bootstrap();
        assert_eq!(brokers, kafkas.iter().map(|k| format!("{k}:9092")).collect::<Vec<_>>().join(","), "{name}");
        assert_eq!((config.kafka.topic_replication, config.kafka.topic_min_insync_replicas), (3, 2), "{name}");
        assert!(
            xml.contains(&format!("<{}>", config.clickhouse.cluster)),
            "{name}: cluster {}",
            config.clickhouse.cluster
        );
        assert!(!config.rollup.enabled);
    }
}

/// A compose duration (Go's form, as compose reads it): `45s`, `1m30s`, `500ms`, `1h`.
fn duration(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    assert!(!rest.is_empty(), "empty duration");
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or_else(|| panic!("{text}: no unit"));
        let number: u64 = rest[..digits].parse().unwrap_or_else(|_| panic!("{text}: no number"));
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => panic!("{text}: unit {other}"),
        };
        total += unit * u32::try_from(number).expect("small number");
        rest = &rest[unit_len..];
    }
    total
}

/// Beyond a service's own bound: committing, leaving the consumer group, closing clients.
const STOP_MARGIN: Duration = Duration::from_secs(10);

/// How long a service of ours may take to stop after SIGTERM, from its configuration (the
/// code paths are named in docker-compose.yml's comment on stop_grace_period).
fn shutdown_bound(name: &str, config: &Config) -> Duration {
    match name {
        // consumer/src/pipeline.rs `finish`: the final flush is bounded by clickhouse.timeout.
        "consumer" => config.clickhouse.timeout,
        // In-flight requests finish, each bounded by api.request_timeout; then the
        // producer flushes for up to ingest.ack_timeout (api/src/lib.rs `run`).
        "api" => config.api.request_timeout + config.ingest.ack_timeout,
        // In-flight requests wait for Kafka's ack (ack_timeout), then the producer flushes
        // for up to ack_timeout (ingest/src/lib.rs `run`).
        "ingest" => config.ingest.ack_timeout * 2,
        other => panic!("no shutdown bound for {other}"),
    }
}

#[test]
fn compose_builds_once_and_every_dependency_can_be_met() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let service = |name: &str| &services[&Value::from(name)];
    let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| scalar(v));

    // The image is built once: only init has `build`, and compose builds it (never pulls
    // an "abtest" image from a registry); the others run that local image.
    let builders: Vec<&str> =
        services.iter().filter(|(_, s)| s.get("build").is_some()).filter_map(|(n, _)| n.as_str()).collect();
    assert_eq!(builders, ["init"], "exactly one service builds our image");
    assert_eq!(service("init")["image"], Value::from(OUR_IMAGE));
    assert_eq!(service("init")["pull_policy"], Value::from("build"));
    for name in ["ingest", "consumer", "api"] {
        assert_eq!(service(name)["image"], Value::from(OUR_IMAGE), "{name}");
        assert_eq!(service(name)["pull_policy"], Value::from("never"), "{name} must not pull {OUR_IMAGE}");
    }

    // init is restarted until it succeeds; a service that others wait on to complete must
    // be able to complete (no `always`/`unless-stopped`).
    assert_eq!(service("init")["restart"], Value::from("on-failure"));

    // Every service but the one-shot init has a health check with a start period.
    for (name, svc) in services {
        let name = name.as_str().expect("name");
        if name == "init" {
            assert!(svc.get("healthcheck").is_none(), "init is a one-shot, not a server");
            continue;
        }
        let health = &svc["healthcheck"];
        assert!(health.get("test").is_some(), "{name}: no health check");
        let start = health.get("start_period").unwrap_or_else(|| panic!("{name}: health check without start_period"));
        assert!(duration(&text(start)) > Duration::ZERO, "{name}: start_period");
    }

    // Every dependency exists, and its condition can be met: service_healthy needs a health
    // check, service_completed_successfully a service that exits.
    for (name, svc) in services {
        let Some(Value::Mapping(deps)) = svc.get("depends_on") else { continue };
        for (dep, how) in deps {
            let dep_svc = services.get(dep).unwrap_or_else(|| panic!("{name:?} depends on missing {dep:?}"));
            match how["condition"].as_str().expect("condition") {
                "service_healthy" => assert!(dep_svc.get("healthcheck").is_some(), "{dep:?} has no health check"),
                "service_completed_successfully" => {
                    let restart = dep_svc.get("restart").and_then(Value::as_str).unwrap_or("no");
                    assert!(
                        matches!(restart, "no" | "on-failure") || restart.starts_with("on-failure:"),
                        "{dep:?} never completes: restart {restart}"
                    );
                }
                other => assert_eq!(other, "service_started"),
            }
        }
    }

    // Postgres is checked over TCP: the image's first-boot server listens on its socket only.
    let pg_health = format!("{:?}", service("postgres")["healthcheck"]["test"]);
    assert!(pg_health.contains("pg_isready") && pg_health.contains("-h 127.0.0.1"), "postgres: {pg_health}");
}

#[test]
fn compose_stops_gracefully_and_ships_current_servers() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let service = |name: &str| &services[&Value::from(name)];
    let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| scalar(v));

    // SIGKILL comes after stop_grace_period: longer than each service's own shutdown bound.
    for name in ["ingest", "consumer", "api"] {
        let svc = service(name);
        let config = load(&abtest_vars(&environment(svc))).unwrap_or_else(|e| panic!("{name}: {e}"));
        let grace =
            duration(&text(svc.get("stop_grace_period").unwrap_or_else(|| panic!("{name}: no stop_grace_period"))));
        let bound = shutdown_bound(name, &config);
        assert!(grace >= bound + STOP_MARGIN, "{name}: stop_grace_period {grace:?} < {bound:?} + {STOP_MARGIN:?}");
    }

    // Current servers: Apache Kafka 4.x (KRaft only) and a ClickHouse LTS line (x.3 or x.8).
    let image = |name: &str| service(name)["image"].as_str().expect("image").to_owned();
    let kafka = image("kafka");
    let tag = kafka.strip_prefix("apache/kafka:").unwrap_or_else(|| panic!("kafka image {kafka}"));
    assert_eq!(tag.split('.').next(), Some("4"), "Kafka 4.x: {kafka}");
    let kafka_env = environment(service("kafka"));
    assert_eq!(kafka_env["KAFKA_PROCESS_ROLES"], "broker,controller");
    assert!(!kafka_env.keys().any(|k| k.contains("ZOOKEEPER")), "Kafka 4 has no ZooKeeper mode");
    let clickhouse = image("clickhouse");
    let tag = clickhouse.strip_prefix("clickhouse/clickhouse-server:").unwrap_or_else(|| panic!("{clickhouse}"));
    let mut parts = tag.split('.').map(|p| p.parse::<u32>().unwrap_or_else(|_| panic!("{clickhouse}")));
    let (year, minor) = (parts.next().expect("year"), parts.next().expect("minor"));
    assert!(year >= 25 && (minor == 3 || minor == 8), "ClickHouse LTS lines are YY.3 and YY.8: {clickhouse}");
}

#[test]
fn env_example_documents_every_key_with_its_default() {
    let text = std::fs::read_to_string(format!("{ROOT}/.env.example")).expect(".env.example");
    let mut vars = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (k, v) = line.split_once('=').expect("KEY=value");
        let v = v.trim_matches('\'');
        if k.starts_with("ABTEST_") {
            vars.insert(k.to_owned(), v.to_owned());
        } else {
            assert!(k.starts_with("STACK_"), "unexpected variable {k}");
        }
    }
    let config = load(&vars).unwrap_or_else(|e| panic!(".env.example: {e}"));
    assert_eq!(config, Config::default(), ".env.example must show the built-in defaults");

    // Every leaf of the configuration is documented.
    fn leaves(prefix: &str, value: &serde_json::Value, out: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    leaves(&format!("{prefix}{}__", k.to_uppercase()), v, out);
                }
            }
            _ => {
                out.insert(prefix.trim_end_matches("__").to_owned());
            }
        }
    }
    let mut keys = BTreeSet::new();
    leaves("ABTEST_", &serde_json::to_value(Config::default()).expect("json"), &mut keys);
    keys.remove("ABTEST_KAFKA__PROPERTIES"); // an open map of librdkafka properties, documented in a comment
    let documented: BTreeSet<String> = vars.keys().cloned().collect();
    let missing: Vec<_> = keys.difference(&documented).collect();
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");
}
