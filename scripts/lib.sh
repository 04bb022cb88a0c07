# Shared by scripts/up, scripts/down and scripts/test. Not meant to be run directly.
#
# The local stack runs as plain processes on loopback, all state under .run/:
#   .run/<name>.pid  .run/<name>.log  for postgres, clickhouse, kafka, ingest, consumer, api
#   (and devbroker: librdkafka's mock cluster, for the tests that switch brokers off;
#   kafka-tls, kafka-ssl, kafka-sasl: brokers with TLS and/or SCRAM users, for the Kafka
#   TLS/SASL tests)
#   .run/tls/: a test CA and certificates (Postgres and ClickHouse serve TLS with them)
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
CH_HTTPS_PORT=${STACK_CLICKHOUSE_HTTPS_PORT:-8443}
CH_TCP_PORT=${STACK_CLICKHOUSE_TCP_PORT:-19000}
BROKER_CONTROL_PORT=${STACK_BROKER_CONTROL_PORT:-9094}
KAFKA_PORT=${STACK_KAFKA_PORT:-9092}
KAFKA_TLS_PORT=${STACK_KAFKA_TLS_PORT:-9093}
KAFKA_SSL_PORT=${STACK_KAFKA_SSL_PORT:-9095}
KAFKA_SASL_PORT=${STACK_KAFKA_SASL_PORT:-9096}
TLS_DIR="$RUN/tls"
# Test-only users of the TLS tests (local stack only; these are not secrets anywhere).
PG_PW_USER=abtest_pw PG_PW_PASSWORD=pg-test-password
PG_CERT_USER=abtest_cert
CH_PW_USER=abtest_pw CH_PW_PASSWORD=ch-test-password
KAFKA_SCRAM256=abtest256:scram256-test-password
KAFKA_SCRAM512=abtest512:scram512-test-password
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
  # libssl-dev and libcurl4-openssl-dev: librdkafka's TLS/SASL and its OIDC token fetcher;
  # openssl: the local stack's test CA.
  local wanted=(postgresql clickhouse-server clickhouse-client curl ca-certificates build-essential pkg-config python3
    zlib1g-dev libssl-dev libcurl4-openssl-dev openssl "$@")
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

# --- test PKI: a CA, certificates for localhost, a client certificate, a wrong CA ------

# EC P-256, PKCS#8 keys (accepted by Postgres, ClickHouse 18.16, nisshi, librdkafka, rustls):
#   ca.{key,crt}        the test CA
#   server.{key,crt}    CN=localhost, SAN DNS:localhost IP:127.0.0.1, signed by ca
#   client.{key,crt}    CN=abtest_cert (a Postgres user with cert authentication), signed by ca
#   wrong-ca.{key,crt}  an unrelated CA; wrong-client.{key,crt} a client signed by it
# Made once; delete .run/tls to make a new one (restart the stack then).
ensure_test_pki() {
  [[ -f "$TLS_DIR/wrong-client.crt" ]] && return
  log "making a test CA and certificates in .run/tls"
  rm -rf "$TLS_DIR" && mkdir -p "$TLS_DIR"
  (
    cd "$TLS_DIR"
    set -e
    for ca in ca wrong-ca; do
      openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout $ca.key -out $ca.crt -days 3650 -subj "/CN=abtest test $ca" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    done
    # leaf <name> <CN> <signing CA> <extendedKeyUsage> [subjectAltName]
    leaf() {
      openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
      printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=$4" ${5:+"subjectAltName=$5"} >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial \
        -out "$1.crt" -days 825 -sha256 -extfile "$1.ext" 2>/dev/null
    }
    leaf server localhost ca serverAuth "DNS:localhost,IP:127.0.0.1"
    leaf client "$PG_CERT_USER" ca clientAuth
    leaf wrong-client "$PG_CERT_USER" wrong-ca clientAuth
    rm -f ./*.csr ./*.ext ./*.srl
    chmod 600 ./*.key
    chmod 644 ./*.crt
    openssl verify -CAfile ca.crt server.crt client.crt >/dev/null
  ) || die "could not make the test PKI in $TLS_DIR"
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

# TLS for Postgres: the server certificate, the CA that signs client certificates, and who
# may log in how. Plain TCP keeps working for everyone else (the default sslmode, prefer,
# takes TLS when offered); the two test users must use TLS.
pg_tls_files() {
  local data=$1
  install -o postgres -g postgres -m 600 "$TLS_DIR/server.key" "$data/server.key"
  install -o postgres -g postgres -m 644 "$TLS_DIR/server.crt" "$data/server.crt"
  install -o postgres -g postgres -m 644 "$TLS_DIR/ca.crt" "$data/root.crt"
  cat >"$data/pg_hba.conf" <<HBA
# Written by scripts/lib.sh (pg_tls_files).
local     all all                     trust
hostssl   all $PG_CERT_USER 127.0.0.1/32    cert
hostssl   all $PG_PW_USER   127.0.0.1/32    scram-sha-256
hostnossl all $PG_CERT_USER 127.0.0.1/32    reject
hostnossl all $PG_PW_USER   127.0.0.1/32    reject
host      all all           127.0.0.1/32    trust
host      all all           ::1/128         trust
HBA
  chown postgres:postgres "$data/pg_hba.conf"
}

pg_roles() {
  psql_admin -tc "SELECT 1 FROM pg_roles WHERE rolname = 'abtest'" | grep -q 1 \
    || psql_admin -c "CREATE ROLE abtest LOGIN CREATEDB PASSWORD 'abtest'" >/dev/null
  psql_admin -tc "SELECT 1 FROM pg_database WHERE datname = 'abtest'" | grep -q 1 \
    || psql_admin -c "CREATE DATABASE abtest OWNER abtest" >/dev/null
  psql_admin -tc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_CERT_USER'" | grep -q 1 \
    || psql_admin -c "CREATE ROLE $PG_CERT_USER LOGIN" >/dev/null
  psql_admin -tc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_PW_USER'" | grep -q 1 \
    || psql_admin -c "CREATE ROLE $PG_PW_USER LOGIN PASSWORD '$PG_PW_PASSWORD'" >/dev/null
}

start_postgres() {
  local dir
  dir=$(pg_dir)
  chown postgres:postgres "$dir"
  chmod 700 "$dir"
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    log "initialising Postgres in $dir"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 || die "initdb failed: $dir/initdb.log"
  fi
  ensure_test_pki
  pg_tls_files "$dir/data"
  if pg_ready && [[ -f "$dir/data/postmaster.pid" ]]; then
    head -1 "$dir/data/postmaster.pid" >"$RUN/postgres.pid"
    if [[ "$(psql_admin -tAc 'SHOW ssl') $(psql_admin -tAc 'SHOW max_connections')" == "on $PG_MAX_CONNECTIONS" ]]; then
      psql_admin -tAc 'SELECT pg_reload_conf()' >/dev/null # pg_hba.conf and certificates
      pg_roles
      return
    fi
    log "restarting Postgres with TLS (ssl=on) and max_connections=$PG_MAX_CONNECTIONS"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  fi
  log "starting Postgres on 127.0.0.1:$PG_PORT (TLS on)"
  rm -f "$dir/data/postmaster.pid"
  ln -sfn "$dir/server.log" "$RUN/postgres.log"
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c max_connections=$PG_MAX_CONNECTIONS -c fsync=on \
        -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c ssl_ca_file=root.crt \
        -c ssl_min_protocol_version=TLSv1.2" start >/dev/null \
    || die "Postgres did not start: .run/postgres.log"
  head -1 "$dir/data/postmaster.pid" >"$RUN/postgres.pid"
  pg_roles
}

psql_admin() { psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"; }

# The Postgres connection budget: every api instance may open postgres.max_connections
# (its pool) and one more (the rollup sealer's own connection, which holds its lock);
# together they must leave room (RESERVED) for migrations, tests and admins.
PG_MAX_CONNECTIONS=320
PG_RESERVED_CONNECTIONS=40
check_postgres_budget() { # check_postgres_budget <api instances>: against the running server
  local pool=${ABTEST_POSTGRES__MAX_CONNECTIONS:-32} max
  max=$(psql_admin -tAc 'SHOW max_connections')
  local need=$(($1 * (pool + 1))) room=$((max - PG_RESERVED_CONNECTIONS))
  ((need <= room)) || die "Postgres connection budget: $1 api instances x (postgres.max_connections $pool + 1 for the sealer) = $need connections, but the local Postgres allows $room (max_connections $max, $PG_RESERVED_CONNECTIONS reserved): lower ABTEST_POSTGRES__MAX_CONNECTIONS or the instances"
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

# The config.xml lines every ClickHouse server of ours shares (this one and the cluster's,
# scripts/cluster.sh): its directories under <dir> (ch_server_dirs makes them), users,
# limits, UTC.
ch_server_dirs() { mkdir -p "$1/data" "$1/tmp" "$1/user_files" "$1/format_schemas"; }
ch_server_xml() { # ch_server_xml <dir>
  local dir=$1
  cat <<XML
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <max_concurrent_queries>200</max_concurrent_queries>
    <mark_cache_size>1073741824</mark_cache_size>
    <timezone>UTC</timezone>
XML
}
ch_tls_ready() { curl -fsS --cacert "$TLS_DIR/ca.crt" "https://localhost:$CH_HTTPS_PORT/ping"; }

start_clickhouse() {
  ensure_test_pki
  if running clickhouse clickhouse && ch_ready >/dev/null 2>&1; then
    ch_tls_ready >/dev/null 2>&1 && return
    log "restarting ClickHouse with HTTPS on $CH_HTTPS_PORT"
    stop_pid clickhouse clickhouse
  fi
  local dir="$RUN/clickhouse"
  ch_server_dirs "$dir"
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
    <https_port>$CH_HTTPS_PORT</https_port>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <openSSL>
        <server>
            <certificateFile>$TLS_DIR/server.crt</certificateFile>
            <privateKeyFile>$TLS_DIR/server.key</privateKeyFile>
            <!-- relaxed: a client certificate is optional, and checked against caConfig when sent -->
            <verificationMode>relaxed</verificationMode>
            <caConfig>$TLS_DIR/ca.crt</caConfig>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
$(ch_server_xml "$dir")
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
</yandex>
XML
  cat >"$dir/users.xml" <<XML
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
        <$CH_PW_USER>
            <password>$CH_PW_PASSWORD</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </$CH_PW_USER>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
  log "starting ClickHouse on 127.0.0.1:$CH_HTTP_PORT (HTTP) and :$CH_HTTPS_PORT (HTTPS)"
  spawn clickhouse clickhouse-server --config-file="$dir/config.xml"
  wait_for "ClickHouse" 60 ch_ready
  wait_for "ClickHouse HTTPS" 30 ch_tls_ready
}

# --- Kafka: nisshi, a durable Kafka-protocol broker (SQLite storage under .run/kafka) -------

nisshi_bin() { command -v nisshi 2>/dev/null || echo "$HOME/.cargo/bin/nisshi"; }

# Builds nisshi from crates.io once (about 20 minutes on 2 cores) unless this version is there.
# --ignore-rust-version: its rama 0.4 dependency declares rust 1.96 but builds on 1.95.
ensure_nisshi() {
  "$(nisshi_bin)" --version 2>/dev/null | grep -q "$NISSHI_VERSION" && return 0
  log "building the local Kafka broker: nisshi $NISSHI_VERSION from crates.io (once; ~20 min on 2 cores)"
  cargo install nisshi --version "$NISSHI_VERSION" --locked --ignore-rust-version \
    --no-default-features --features libsql >"$RUN/nisshi-install.log" 2>&1 \
    || die "could not build nisshi: $RUN/nisshi-install.log"
}

# The stack's brokers: one, or with STACK_CLUSTER=1 three (kafka, kafka-2, kafka-3 on
# KAFKA_PORT, +10, +20). nisshi is a stateless broker over its storage: the three share
# .run/kafka/broker.db and each answers for every partition, so a client fails over to any
# broker in its bootstrap list. There is no Kafka replication (one copy, in the storage):
# README "Scaling out".
kafka_brokers() { if ((${STACK_CLUSTER:-0})); then echo 3; else echo 1; fi; }
kafka_addresses() { # host:port of every broker of the stack, comma-separated
  local i out=()
  for ((i = 1; i <= $(kafka_brokers); i++)); do out+=("$(instance_addr "127.0.0.1:$KAFKA_PORT" "$i")"); done
  (IFS=,; echo "${out[*]}")
}

start_kafka() {
  local i name addr
  for ((i = $(kafka_brokers) + 1; i <= 3; i++)); do stop_pid "$(instance_name kafka "$i")" nisshi; done
  for ((i = 1; i <= $(kafka_brokers); i++)); do
    name=$(instance_name kafka "$i") addr=$(instance_addr "127.0.0.1:$KAFKA_PORT" "$i")
    if running "$name" nisshi; then # ours is up: wait for it (never start a second one)
      wait_for "Kafka broker $name" 60 port_open "${addr##*:}"
      continue
    fi
    ensure_nisshi
    mkdir -p "$RUN/kafka"
    log "starting the Kafka broker $name (nisshi, data in .run/kafka) on $addr"
    # A short initial rebalance delay: tests and restarts start consumer groups often.
    RUST_LOG=${STACK_KAFKA_LOG:-warn} spawn "$name" "$(nisshi_bin)" broker --listener-url "tcp://$addr" \
      --advertised-listener-url "tcp://$addr" --storage-engine "sqlite:///$RUN/kafka/broker.db" \
      --group-initial-rebalance-delay 500ms
    wait_for "Kafka broker $name" 60 port_open "${addr##*:}"
  done
}

stop_kafka() { local i; for i in 1 2 3; do stop_pid "$(instance_name kafka "$i")" nisshi; done; }

# --- secured brokers: more nisshi processes with TLS and/or SCRAM users (scripts/test) ---
# nisshi 0.8.1 has native TLS (--cert/--key) and SCRAM-SHA-256/512 users (`nisshi user
# create`, --authentication); no PLAIN, no OAUTHBEARER, no client certificates. One listener
# each, so one broker per security protocol:
#   kafka-tls   SASL_SSL        TLS + SCRAM   STACK_KAFKA_TLS_PORT (9093)
#   kafka-ssl   SSL             TLS only      STACK_KAFKA_SSL_PORT (9095)
#   kafka-sasl  SASL_PLAINTEXT  SCRAM only    STACK_KAFKA_SASL_PORT (9096)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_secured_broker <name> <port> <tls: 0|1> <scram users: 0|1>
start_secured_broker() {
  local name=$1 port=$2 tls=$3 auth=$4 user
  running "$name" nisshi && port_open "$port" && return
  ensure_nisshi
  ensure_test_pki
  local dir="$RUN/$name"
  mkdir -p "$dir"
  local args=(broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://localhost:$port"
    --storage-engine "sqlite:///$dir/broker.db" --group-initial-rebalance-delay 500ms)
  if ((auth)) && [[ ! -f "$dir/users.done" ]]; then
    # Users are created through the broker, which then must not require authentication
    # yet: once without TLS and authentication, on the same database.
    log "creating the SCRAM users of $name"
    spawn "$name" "$(nisshi_bin)" "${args[@]}"
    wait_for "$name (setup)" 60 port_open "$port"
    for user in "scram256 $KAFKA_SCRAM256" "scram512 $KAFKA_SCRAM512"; do
      set -- $user
      "$(nisshi_bin)" user create --broker "tcp://127.0.0.1:$port" --mechanism "$1" "${2%%:*}" "${2#*:}" \
        >>"$RUN/$name.log" 2>&1 || die "could not create the SCRAM user ${2%%:*}: .run/$name.log"
    done
    stop_pid "$name" nisshi
    touch "$dir/users.done"
  fi
  ((tls)) && args+=(--cert "$TLS_DIR/server.crt" --key "$TLS_DIR/server.key")
  ((auth)) && args+=(--authentication)
  log "starting $name on localhost:$port (TLS: $tls, SCRAM: $auth)"
  spawn "$name" "$(nisshi_bin)" "${args[@]}"
  wait_for "$name" 60 port_open "$port"
}

start_secured_brokers() {
  start_secured_broker kafka-tls "$KAFKA_TLS_PORT" 1 1
  start_secured_broker kafka-ssl "$KAFKA_SSL_PORT" 1 0
  start_secured_broker kafka-sasl "$KAFKA_SASL_PORT" 0 1
}

stop_secured_brokers() { for name in kafka-tls kafka-ssl kafka-sasl; do stop_pid "$name" nisshi; done; }

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

# The local ClickHouse cluster (scripts/up --cluster): ZooKeeper and four clickhouse-server.
# shellcheck source=scripts/cluster.sh
source "$ROOT/scripts/cluster.sh"

# Environment of our binaries on the local stack.
stack_env() {
  echo "ABTEST_KAFKA__BROKERS=${ABTEST_KAFKA__BROKERS:-$(kafka_addresses)}"
  echo "ABTEST_KAFKA__TOPIC_PARTITIONS=${ABTEST_KAFKA__TOPIC_PARTITIONS:-${STACK_KAFKA_PARTITIONS:-6}}"
  # Short sessions locally so that a restarted consumer gets its partitions back quickly
  # (production keeps 45 s).
  echo "ABTEST_KAFKA__SESSION_TIMEOUT=${ABTEST_KAFKA__SESSION_TIMEOUT:-6s}"
  echo "ABTEST_POSTGRES__URL=${ABTEST_POSTGRES__URL:-postgres://abtest:abtest@127.0.0.1:$PG_PORT/abtest}"
  if ((${STACK_CLUSTER:-0})); then
    # The cluster through its first node; the rollup runs on one server only.
    echo "ABTEST_CLICKHOUSE__URL=${ABTEST_CLICKHOUSE__URL:-http://127.0.0.1:$(node_http 1)}"
    echo "ABTEST_CLICKHOUSE__CLUSTER=$CLUSTER_NAME"
    echo "ABTEST_ROLLUP__ENABLED=false"
    # What a replicated Kafka would be given (nisshi stores both, enforces neither).
    echo "ABTEST_KAFKA__TOPIC_REPLICATION=3"
    echo "ABTEST_KAFKA__TOPIC_MIN_INSYNC_REPLICAS=2"
  else
    echo "ABTEST_CLICKHOUSE__URL=${ABTEST_CLICKHOUSE__URL:-http://127.0.0.1:$CH_HTTP_PORT}"
  fi
}

start_deps() {
  start_postgres
  if ((${STACK_CLUSTER:-0})); then start_cluster; else start_clickhouse; fi
  start_kafka
}

export_test_env() {
  export ABTESTKIT_POSTGRES_URL="postgres://abtest:abtest@127.0.0.1:$PG_PORT/postgres"
  export ABTESTKIT_CLICKHOUSE_URL="http://127.0.0.1:$CH_HTTP_PORT"
  export ABTESTKIT_CURRENT_CLICKHOUSE_URL="http://127.0.0.1:$CHDB_PORT"
  export ABTESTKIT_CLICKHOUSE_CLUSTER="$CLUSTER_NAME"
  local n nodes=()
  for n in "${CLUSTER_NODES[@]}"; do nodes+=("http://127.0.0.1:$(node_http "$n")"); done
  ABTESTKIT_CLICKHOUSE_CLUSTER_NODES=$(IFS=,; echo "${nodes[*]}")
  export ABTESTKIT_CLICKHOUSE_CLUSTER_NODES
  export ABTESTKIT_KAFKA="127.0.0.1:$KAFKA_PORT"
  export ABTESTKIT_BROKER_CONTROL="http://127.0.0.1:$BROKER_CONTROL_PORT"
  # The TLS tests (common/tests/tls.rs, api/tests/startup.rs)
  export ABTESTKIT_TLS_DIR="$TLS_DIR"
  export ABTESTKIT_POSTGRES_TLS="localhost:$PG_PORT"
  export ABTESTKIT_POSTGRES_PW_USER="$PG_PW_USER:$PG_PW_PASSWORD"
  export ABTESTKIT_POSTGRES_CERT_USER="$PG_CERT_USER"
  export ABTESTKIT_CLICKHOUSE_HTTPS_URL="https://localhost:$CH_HTTPS_PORT"
  export ABTESTKIT_CLICKHOUSE_PW_USER="$CH_PW_USER:$CH_PW_PASSWORD"
  export ABTESTKIT_KAFKA_TLS="localhost:$KAFKA_TLS_PORT"
  export ABTESTKIT_KAFKA_SSL="localhost:$KAFKA_SSL_PORT"
  export ABTESTKIT_KAFKA_SASL="localhost:$KAFKA_SASL_PORT"
  export ABTESTKIT_KAFKA_SCRAM256="$KAFKA_SCRAM256"
  export ABTESTKIT_KAFKA_SCRAM512="$KAFKA_SCRAM512"
}
