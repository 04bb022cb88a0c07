# The local ClickHouse cluster (scripts/up --cluster, scripts/test, scripts/chaos --cluster):
# 2 shards x 2 replicas of ClickHouse 18.16 as plain processes on loopback, coordinated by
# ZooKeeper 3.8 (Debian's package). Sourced by scripts/lib.sh; not meant to be run directly.
#
#   node i (1..4): shard (i + 1) / 2, replica r1 | r2, pid and log .run/ch<i>.pid/.log, data
#   .run/chcluster/ch<i>; HTTP 8130 + i, native TCP 19130 + i, interserver 9130 + i.
#   ZooKeeper on 12181, data .run/chcluster/zk. The cluster's name (remote_servers): abtest.
# Processes are stopped by their pid (stop_pid), never by name.

CLUSTER_NAME=abtest
CLUSTER_NODES=(1 2 3 4)
CLUSTER_HTTP_BASE=${STACK_CLUSTER_HTTP_BASE:-8130}
CLUSTER_TCP_BASE=${STACK_CLUSTER_TCP_BASE:-19130}
CLUSTER_IS_BASE=${STACK_CLUSTER_INTERSERVER_BASE:-9130}
ZK_PORT=${STACK_ZOOKEEPER_PORT:-12181}
CLUSTER_DIR="$RUN/chcluster"
# What the cluster needs beyond ensure_packages' list.
# iproute2: `ss`, with which scripts/chaos_cluster.py finds the broker ingest produces through.
CLUSTER_PACKAGES=(zookeeper libslf4j-java default-jre-headless iproute2)

node_http() { echo $((CLUSTER_HTTP_BASE + $1)); }
# chq <node> <sql>: a statement on node i over HTTP; prints the answer, fails on an error.
chq() { curl -sS --fail-with-body --max-time 120 --data-binary "$2" "http://127.0.0.1:$(node_http "$1")/"; }

# --- ZooKeeper -------------------------------------------------------------------------------

zk_ready() { # `ruok` answers before the server serves; `srvr` reports a Mode once it does
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT && printf srvr >&3 && cat <&3" 2>/dev/null | grep -q '^Mode:'
}

start_zookeeper() {
  if running zookeeper QuorumPeerMain; then # ours is up: wait for it (never start a second one)
    wait_for "ZooKeeper" 60 zk_ready
    return
  fi
  local dir="$CLUSTER_DIR/zk"
  mkdir -p "$dir/data"
  # tickTime 500 ms: sessions of 1-10 s; ClickHouse asks for 3 s (a killed node's replicas
  # become inactive within that).
  cat >"$dir/zoo.cfg" <<CFG
tickTime=500
minSessionTimeout=1000
maxSessionTimeout=10000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
CFG
  log "starting ZooKeeper on 127.0.0.1:$ZK_PORT"
  spawn zookeeper java -Xms64m -Xmx256m -XX:+UseSerialGC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -Dzookeeper.log.dir="$dir" -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
  wait_for "ZooKeeper" 60 zk_ready
}

# --- ClickHouse nodes ------------------------------------------------------------------------

node_config() { # node_config <i>: config.xml and users.xml of node i
  local n=$1 dir="$CLUSTER_DIR/ch$1" s r
  ch_server_dirs "$dir"
  {
    cat <<XML
<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>$RUN/ch$n.server.log</log><errorlog>$RUN/ch$n.err.log</errorlog><size>100M</size><count>2</count></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$(node_http "$n")</http_port>
    <tcp_port>$((CLUSTER_TCP_BASE + n))</tcp_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>$((CLUSTER_IS_BASE + n))</interserver_http_port>
$(ch_server_xml "$dir")
    <zookeeper>
        <node><host>127.0.0.1</host><port>$ZK_PORT</port></node>
        <session_timeout_ms>3000</session_timeout_ms>
        <operation_timeout_ms>5000</operation_timeout_ms>
    </zookeeper>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
    <macros><shard>0$(((n + 1) / 2))</shard><replica>r$(((n + 1) % 2 + 1))</replica></macros>
XML
    # internal_replication: a Distributed insert writes one replica of the shard, and the
    # replicated table copies it to the other.
    echo "    <remote_servers><$CLUSTER_NAME>"
    for s in 1 2; do
      echo "        <shard><internal_replication>true</internal_replication>"
      for r in 1 2; do
        echo "            <replica><host>127.0.0.1</host><port>$((CLUSTER_TCP_BASE + (s - 1) * 2 + r))</port></replica>"
      done
      echo "        </shard>"
    done
    echo "    </$CLUSTER_NAME></remote_servers>"
    echo "</yandex>"
  } >"$dir/config.xml"
  # poll_interval 1 s: idle connections of the other nodes' Distributed pools notice a
  # SIGTERM within 1 s (with the default 10 s a node took up to 8.5 s to stop).
  cat >"$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage><poll_interval>1</poll_interval></default></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
}

# Node i serves: it answers through its ZooKeeper session.
node_ready() { [[ $(chq "$1" "SELECT count() > 0 FROM system.zookeeper WHERE path = '/'" 2>/dev/null) == 1 ]]; }
# Every replicated table of node i is writable (not read-only, session alive).
node_writable() { [[ $(chq "$1" "SELECT count() FROM system.replicas WHERE is_readonly OR is_session_expired" 2>/dev/null) == 0 ]]; }

spawn_node() { # spawn_node <i>: start node i when it is down (no wait)
  running "ch$1" "ch$1/config.xml" && return
  node_config "$1"
  # wait_node reads only what this start logs
  wc -l <"$RUN/ch$1.err.log" 2>/dev/null >"$RUN/ch$1.err.mark" || echo 0 >"$RUN/ch$1.err.mark"
  log "starting ClickHouse node ch$1 (shard $((($1 + 1) / 2))) on 127.0.0.1:$(node_http "$1")"
  spawn "ch$1" clickhouse-server --config-file="$CLUSTER_DIR/ch$1/config.xml"
}

# A replica killed (SIGKILL) right after a merge can find parts on disk that ZooKeeper does
# not list; 18.16 then refuses to start ("doesn't look like the set of parts in ZooKeeper").
# The documented recovery: flags/force_restore_data, once (the extra parts go to detached/,
# nothing is deleted). wait_node does that when the node exits for this reason.
wait_node() { # wait_node <i>: until node i serves and its tables are writable
  local n=$1 deadline=$((SECONDS + 90)) restored=0
  until node_ready "$n" && node_writable "$n"; do
    if ! running "ch$n" "ch$n/config.xml"; then
      if ((!restored)) && tail -n +$(($(cat "$RUN/ch$n.err.mark" 2>/dev/null || echo 0) + 1)) "$RUN/ch$n.err.log" 2>/dev/null |
        grep -q "doesn't look like the set of parts in ZooKeeper"; then
        log "ch$n refused its parts after a kill: restarting once with force_restore_data"
        mkdir -p "$CLUSTER_DIR/ch$n/data/flags" && touch "$CLUSTER_DIR/ch$n/data/flags/force_restore_data"
        restored=1
        spawn_node "$n"
        continue
      fi
      die "ClickHouse node ch$n exited while starting (.run/ch$n.err.log)"
    fi
    ((SECONDS < deadline)) || die "ClickHouse node ch$n not ready after 90 s (.run/ch$n.err.log)"
    sleep 0.2
  done
}

start_cluster() {
  start_zookeeper # 18.16 started before ZooKeeper serves can crash
  local n
  for n in "${CLUSTER_NODES[@]}"; do spawn_node "$n"; done
  for n in "${CLUSTER_NODES[@]}"; do wait_node "$n"; done
}

stop_cluster() {
  local n
  for n in "${CLUSTER_NODES[@]}"; do stop_pid "ch$n" "ch$n/config.xml" & done
  wait
  stop_pid zookeeper QuorumPeerMain
}
