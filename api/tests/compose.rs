//! docker-compose.yml and .env.example checked against the code (no Docker engine here):
//! every ABTEST_ variable they set is a real configuration key with a valid value, the
//! services run binaries that exist, and ports and health checks agree with the config.

use std::collections::{BTreeMap, BTreeSet};

use common::Config;
use figment::Jail;
use serde_yaml::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn compose() -> Value {
    let text = std::fs::read_to_string(format!("{ROOT}/docker-compose.yml")).expect("docker-compose.yml");
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
        assert!(service.get("build").is_some(), "{name} sets ABTEST_ variables, so it runs our image");
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
        let ports: Vec<String> = service["ports"].as_sequence().expect("ports").iter().map(scalar).collect();
        assert_eq!(ports, [format!("{0}:{0}", listen.port())], "{name}: published port vs configured listen port");
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
