# Shared by scripts/up, scripts/down and scripts/test. Not meant to be run directly.
#
# The local stack runs as plain processes on loopback, all state under .run/:
#   .run/<name>.pid  .run/<name>.log  for postgres, clickhouse, kafka, ingest, consumer, api
#   (and devbroker: librdkafka's mock cluster, for the tests that switch brokers off)
# Processes are stopped by their pid only (never by name).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN="$ROOT/.run"
mkdir -p "$RUN"

# Configuration: .env (when present) is read by the binaries and by these scripts.
if [[ -f "$ROOT/.env" ]]; then
  set -a
  # shellcheck disable=SC1091
  source "$ROOT/.env"
  set +a
fi

# Local-stack ports (STACK_*), then the addresses the binaries listen on (ABTEST_*).
PG_PORT=${STACK_POSTGRES_PORT:-5433}
CH_HTTP_PORT=${STACK_CLICKHOUSE_HTTP_PORT:-8123}
CH_TCP_PORT=${STACK_CLICKHOUSE_TCP_PORT:-19000}
BROKER_CONTROL_PORT=${STACK_BROKER_CONTROL_PORT:-9094}
KAFKA_PORT=${STACK_KAFKA_PORT:-9092}
# A current ClickHouse engine (chdb 26.x behind our HTTP shim) beside the local 18.16.
CHDB_PORT=${STACK_CHDB_PORT:-8124}
CHDB_VERSION=26.9.0
# The local Kafka-protocol broker: nisshi (crates.io), SQLite storage, built once by cargo.
NISSHI_VERSION=0.8.1
API_ADDR=${ABTEST_API__LISTEN:-127.0.0.1:9000}
INGEST_ADDR=${ABTEST_INGEST__LISTEN:-127.0.0.1:9001}
CONSUMER_ADDR=${ABTEST_CONSUMER__LISTEN:-127.0.0.1:9002}
PG_BIN=/usr/lib/postgresql/15/bin

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages the stack and the build need; installs only what is missing.
ensure_packages() {
  local wanted=(postgresql clickhouse-server clickhouse-client curl ca-certificates build-essential pkg-config python3 zlib1g-dev libssl-dev "$@")
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
}

pid_of() { [[ -f "$RUN/$1.pid" ]] && cat "$RUN/$1.pid" || true; }

# Is the process of .run/<name>.pid alive and still ours (its command line names <exe>)?
running() {
  local name=$1 exe=${2:-$1} pid
  pid=$(pid_of "$name")
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$exe"
}

wait_for() { # wait_for <what> <seconds> <command...>
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what not ready after ${secs}s (see .run/*.log)"
    sleep 0.2
  done
}

# Starts a detached process, recording its pid and appending to its log.
spawn() { # spawn <name> <command...>
  local name=$1
  shift
  echo "--- start $(date -u +%FT%TZ)" >>"$RUN/$name.log"
  setsid nohup "$@" >>"$RUN/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

stop_pid() { # stop_pid <name> [exe]: SIGTERM, wait up to 30 s, then SIGKILL
  local name=$1 exe=${2:-$1} pid
  running "$name" "$exe" || { rm -f "$RUN/$name.pid"; return 0; }
  pid=$(pid_of "$name")
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$RUN/$name.pid"
}

# Instance i of a binary: `<name>` for the first, `<name>-i` after it, on the first
# instance's port + 10 x (i - 1).
instance_name() { if (($2 == 1)); then echo "$1"; else echo "$1-$2"; fi; }
instance_addr() { local host=${1%:*} port=${1##*:}; echo "$host:$((port + 10 * ($2 - 1)))"; }

# --- Postgres: a project-local cluster run by the postgres user -----------------------

# initdb refuses root and the postgres user may not be able to enter this checkout (for
# example under /root): then the cluster lives in /var/tmp and .run/postgres links to it.
pg_dir() {
  if [[ -L "$RUN/postgres" || -d "$RUN/postgres" ]]; then
    readlink -f "$RUN/postgres"
    return
  fi
  if runuser -u postgres -- test -x "$RUN" 2>/dev/null; then
    mkdir -p "$RUN/postgres"
  else
    local alt
    alt="/var/tmp/abtest-pg-$(echo -n "$ROOT" | sha256sum | cut -c1-12)"
    mkdir -p "$alt"
    ln -sfn "$alt" "$RUN/postgres"
  fi
  readlink -f "$RUN/postgres"
}

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

start_postgres() {
  local dir
  dir=$(pg_dir)
  chown postgres:postgres "$dir"
  chmod 700 "$dir"
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    log "initialising Postgres in $dir"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 || die "initdb failed: $dir/initdb.log"
  fi
  if pg_ready && [[ -f "$dir/data/postmaster.pid" ]]; then
    head -1 "$dir/data/postmaster.pid" >"$RUN/postgres.pid"
    return
  fi
  log "starting Postgres on 127.0.0.1:$PG_PORT"
  rm -f "$dir/data/postmaster.pid"
  ln -sfn "$dir/server.log" "$RUN/postgres.log"
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c max_connections=$PG_MAX_CONNECTIONS -c fsync=on" start >/dev/null \
    || die "Postgres did not start: .run/postgres.log"
  head -1 "$dir/data/postmaster.pid" >"$RUN/postgres.pid"
  psql_admin -tc "SELECT 1 FROM pg_roles WHERE rolname = 'abtest'" | grep -q 1 \
    || psql_admin -c "CREATE ROLE abtest LOGIN CREATEDB PASSWORD 'abtest'" >/dev/null
  psql_admin -tc "SELECT 1 FROM pg_database WHERE datname = 'abtest'" | grep -q 1 \
    || psql_admin -c "CREATE DATABASE abtest OWNER abtest" >/dev/null
}

psql_admin() { psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"; }

# The Postgres connection budget: every api instance may open postgres.max_connections
# (its pool); together they must leave room (RESERVED) for migrations, tests and admins.
PG_MAX_CONNECTIONS=300
PG_RESERVED_CONNECTIONS=40
check_postgres_budget() { # check_postgres_budget <api instances>
  local pool=${ABTEST_POSTGRES__MAX_CONNECTIONS:-32}
  local need=$(($1 * pool)) room=$((PG_MAX_CONNECTIONS - PG_RESERVED_CONNECTIONS))
  ((need <= room)) || die "Postgres connection budget: $1 api instances x postgres.max_connections $pool = $need connections, but the local Postgres allows $room (max_connections $PG_MAX_CONNECTIONS, $PG_RESERVED_CONNECTIONS reserved): lower ABTEST_POSTGRES__MAX_CONNECTIONS or the instances"
}

stop_postgres() {
  local dir
  [[ -e "$RUN/postgres" ]] || return 0
  dir=$(readlink -f "$RUN/postgres")
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    log "stopping Postgres"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || stop_pid postgres postgres
  fi
  rm -f "$RUN/postgres.pid"
}

# --- ClickHouse: our own config, data under .run/clickhouse ----------------------------

ch_ready() { curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/ping"; }

start_clickhouse() {
  running clickhouse clickhouse && ch_ready >/dev/null 2>&1 && return
  local dir="$RUN/clickhouse"
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$RUN/clickhouse.log</log>
        <errorlog>$RUN/clickhouse.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$CH_HTTP_PORT</http_port>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <max_concurrent_queries>200</max_concurrent_queries>
    <mark_cache_size>1073741824</mark_cache_size>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <timezone>UTC</timezone>
</yandex>
XML
  cat >"$dir/users.xml" <<'XML'
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>8000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
  log "starting ClickHouse on 127.0.0.1:$CH_HTTP_PORT (HTTP)"
  spawn clickhouse clickhouse-server --config-file="$dir/config.xml"
  wait_for "ClickHouse" 60 ch_ready
}

# --- Kafka: nisshi, a durable Kafka-protocol broker (SQLite storage under .run/kafka) -------

nisshi_bin() { command -v nisshi 2>/dev/null || echo "$HOME/.cargo/bin/nisshi"; }

# Builds nisshi from crates.io once (about 12 minutes on 2 cores) unless this version is there.
# --ignore-rust-version: its rama 0.4 dependency declares rust 1.96 but builds on 1.95.
ensure_nisshi() {
  "$(nisshi_bin)" --version 2>/dev/null | grep -q "$NISSHI_VERSION" && return 0
  log "building the local Kafka broker: nisshi $NISSHI_VERSION from crates.io (once; ~12 min on 2 cores)"
  cargo install nisshi --version "$NISSHI_VERSION" --locked --ignore-rust-version \
    --no-default-features --features libsql >"$RUN/nisshi-install.log" 2>&1 \
    || die "could not build nisshi: $RUN/nisshi-install.log"
}

kafka_ready() { (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; }

start_kafka() {
  running kafka nisshi && kafka_ready && return
  ensure_nisshi
  mkdir -p "$RUN/kafka"
  log "starting the Kafka broker (nisshi, data in .run/kafka) on 127.0.0.1:$KAFKA_PORT"
  # A short initial rebalance delay: tests and restarts start consumer groups often.
  RUST_LOG=${STACK_KAFKA_LOG:-warn} spawn kafka "$(nisshi_bin)" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine "sqlite:///$RUN/kafka/broker.db" \
    --group-initial-rebalance-delay 500ms
  wait_for "Kafka broker" 60 kafka_ready
}

stop_kafka() { stop_pid kafka nisshi; }

# --- the dev broker: librdkafka's mock cluster in our devbroker process ------------------
# Only for tests that need its fault switches (a broker down on request) or isolated
# clusters; the stack's broker is nisshi.

broker_ready() { curl -fsS "http://127.0.0.1:$BROKER_CONTROL_PORT/livez"; }

# start_devbroker <target dir profile: release|debug>
start_devbroker() {
  local profile=$1
  running devbroker devbroker && broker_ready >/dev/null 2>&1 && return
  log "starting the dev broker (mock clusters for fault tests), control on 127.0.0.1:$BROKER_CONTROL_PORT"
  rm -f "$RUN/devbroker.bootstrap"
  spawn devbroker "$ROOT/target/$profile/devbroker" --control "127.0.0.1:$BROKER_CONTROL_PORT" \
    --bootstrap-file "$RUN/devbroker.bootstrap" --topics "unused:1"
  wait_for "devbroker" 30 broker_ready
}

# --- a current ClickHouse: chdb (ClickHouse 26.x in Python) behind scripts/chdb-server.py -

chdb_ready() { curl -fsS "http://127.0.0.1:$CHDB_PORT/ping"; }

# chdb-core from PyPI into .run/chdb-venv (a 180 MB wheel), once.
ensure_chdb() {
  local venv="$RUN/chdb-venv"
  "$venv/bin/python" -c "import chdb" 2>/dev/null && return 0
  log "installing chdb-core $CHDB_VERSION (a current ClickHouse engine) into .run/chdb-venv"
  python3 -m venv "$venv" 2>/dev/null || { ensure_packages python3-venv && python3 -m venv "$venv"; }
  "$venv/bin/python" -m pip install -q "chdb-core==$CHDB_VERSION" || die "could not install chdb-core"
}

start_chdb() {
  running chdb chdb-server && chdb_ready >/dev/null 2>&1 && return
  ensure_chdb
  mkdir -p "$RUN/chdb"
  log "starting a current ClickHouse (chdb $CHDB_VERSION) on 127.0.0.1:$CHDB_PORT (HTTP)"
  spawn chdb "$RUN/chdb-venv/bin/python" "$ROOT/scripts/chdb-server.py" --data "$RUN/chdb" --port "$CHDB_PORT"
  wait_for "chdb" 120 chdb_ready
}

# Environment of our binaries on the local stack.
stack_env() {
  echo "ABTEST_KAFKA__BROKERS=${ABTEST_KAFKA__BROKERS:-127.0.0.1:$KAFKA_PORT}"
  echo "ABTEST_KAFKA__TOPIC_PARTITIONS=${ABTEST_KAFKA__TOPIC_PARTITIONS:-${STACK_KAFKA_PARTITIONS:-6}}"
  # Short sessions locally so that a restarted consumer gets its partitions back quickly
  # (production keeps 45 s).
  echo "ABTEST_KAFKA__SESSION_TIMEOUT=${ABTEST_KAFKA__SESSION_TIMEOUT:-6s}"
  echo "ABTEST_POSTGRES__URL=${ABTEST_POSTGRES__URL:-postgres://abtest:abtest@127.0.0.1:$PG_PORT/abtest}"
  echo "ABTEST_CLICKHOUSE__URL=${ABTEST_CLICKHOUSE__URL:-http://127.0.0.1:$CH_HTTP_PORT}"
}

start_deps() {
  start_postgres
  start_clickhouse
  start_kafka
}

export_test_env() {
  export ABTESTKIT_POSTGRES_URL="postgres://abtest:abtest@127.0.0.1:$PG_PORT/postgres"
  export ABTESTKIT_CLICKHOUSE_URL="http://127.0.0.1:$CH_HTTP_PORT"
  export ABTESTKIT_CURRENT_CLICKHOUSE_URL="http://127.0.0.1:$CHDB_PORT"
  export ABTESTKIT_KAFKA="127.0.0.1:$KAFKA_PORT"
  export ABTESTKIT_BROKER_CONTROL="http://127.0.0.1:$BROKER_CONTROL_PORT"
}
