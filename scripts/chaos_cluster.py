#!/usr/bin/env python3
"""Scale-out under faults (scripts/chaos --cluster), with exact counts afterwards.

The stack runs with the local ClickHouse cluster (2 shards x 2 replicas, ZooKeeper), three
Kafka brokers (nisshi processes over one storage), 2 ingest, 3 consumers (one group) and 2
api instances (scripts/up --cluster --ingest 2 --consumers 3 --api 2). Events flow through both ingests the whole time (about 1000/s), and
new users are assigned through both apis (each assignment answered 200 is recorded; a third
of those users then buys, through one of the ingests). Meanwhile, one after the other:
  1. a rolling restart of every instance: SIGTERM, scripts/up (starts it, waits ready), next
  2. one consumer killed with SIGKILL, restarted
  3. one ClickHouse replica (ch4) killed with SIGKILL, restarted
  4. both replicas of shard 2 (ch3, ch4) stopped for 30 s: inserts fail, the consumers retry
  5. the Kafka broker the first ingest produces through killed with SIGKILL for 10 s (three
     nisshi brokers share one storage: the producers fail over to the other two)
  6. 200 simultaneous first assignments of one user, split over the two apis
Then: every acknowledged event is on the cluster, once (rows after merges = distinct ids,
replicas of a shard equal); every user answered 200 has one assignment row and exposures of
exactly that variant (one row after merges, the same in Postgres); and the results the api computes on the cluster equal those an api
computes on one server (ClickHouse 18.16, single-node DDL) from a copy of the same rows.
Needs the Python standard library and `ss` (iproute2).
"""
import json
import os
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chaos import (  # noqa: E402
    RUN, ROOT, RUN_TYPE, Load, alive, ch, eventually, log, metric, pid, race_first_assignments, request, run, up,
    wait_accepting)



def instances(variable, default, count):
    """The addresses of instance 1..count (scripts/up: the first one's port + 10 x (i - 1))."""
    port = int(os.environ.get(variable, default).rsplit(":", 1)[1])
    return [f"http://127.0.0.1:{port + 10 * i}" for i in range(count)]


INGESTS = instances("ABTEST_INGEST__LISTEN", "127.0.0.1:9001", 2)
APIS = instances("ABTEST_API__LISTEN", "127.0.0.1:9000", 2)
CONSUMERS = instances("ABTEST_CONSUMER__LISTEN", "127.0.0.1:9002", 3)
INSTANCES = ["ingest", "ingest-2", "consumer", "consumer-2", "consumer-3", "api", "api-2"]
NODES = [f"http://127.0.0.1:{int(os.environ.get('STACK_CLUSTER_HTTP_BASE', '8130')) + i}" for i in (1, 2, 3, 4)]
SINGLE = "http://127.0.0.1:" + os.environ.get("STACK_CLICKHOUSE_HTTP_PORT", "8123")
KAFKA_PORT = int(os.environ.get("STACK_KAFKA_PORT", "9092"))
BROKERS = {"kafka": KAFKA_PORT, "kafka-2": KAFKA_PORT + 10, "kafka-3": KAFKA_PORT + 20}
BUY = RUN_TYPE + "_buy"
COPY_API = "127.0.0.1:9099"


def sql(base, query, database="abtest", body=None):
    """chaos.ch on the server at `base` (a node of the cluster, or the single server)."""
    return ch(query, base, database, body)


def lib(command):
    """A function of scripts/lib.sh (stops by pid, starts the single ClickHouse)."""
    subprocess.run(["bash", "-c", f"source '{ROOT}/scripts/lib.sh' && {command}"], check=True, stdout=subprocess.DEVNULL)


class Assigner:
    """New users assigned through both apis, about 20/s; a third of them buy (one event
    through one of the ingests). Records the variant of every 200 and every acked buy."""

    def __init__(self, experiment):
        self.experiment, self.variants, self.bought = experiment, {}, set()
        self.answers, self.stop_flag = {}, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            user = f"user-{RUN_TYPE[6:]}-{n}"
            try:
                status, body, _ = request("GET", f"{APIS[n % 2]}/experiments/{self.experiment}/assignment/{user}")
            except OSError:
                status = "connection"
            self.answers[status] = self.answers.get(status, 0) + 1
            if status == 200:
                self.variants[user] = json.loads(body)["variant"]
                if n % 3 == 0:
                    event_id = str(uuid.uuid4())
                    event = {"event_id": event_id, "user_id": user, "type": BUY, "properties": {"amount": n % 17}}
                    try:
                        if request("POST", INGESTS[n % 2] + "/events", event)[0] == 202:
                            self.bought.add(event_id)
                    except OSError:
                        pass
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join()


def rolling_restart(load):
    started = time.time()
    for name in INSTANCES:
        p = pid(name)
        os.kill(p, 15)
        eventually(f"{name} to exit", 60, lambda: not alive(p))
        up()
        assert alive(pid(name)) and pid(name) != p, name
        wait_accepting(load, 200)
    log(f"rolling restart of {len(INSTANCES)} instances under load in {time.time() - started:.0f} s")
    return len(INSTANCES)


def kill(name, what):
    p = pid(name)
    os.kill(p, 9)
    eventually(f"{name} to die", 30, lambda: not alive(p))
    log(f"{what} ({name}, pid {p}) killed with SIGKILL")


def replica_down(load):
    kill("ch4", "a ClickHouse replica of shard 2")
    wait_accepting(load, 500)
    up()
    log("ch4 back (scripts/up waits until its tables are writable)")


def insert_failures():
    return sum(metric(c, "abtest_consumer_insert_failures_total") for c in CONSUMERS)


def shard_down(load):
    failures = insert_failures()
    for n in (3, 4):
        lib(f"stop_pid ch{n} ch{n}/config.xml")
    with load.lock:
        before = dict(load.statuses)
    log("both replicas of shard 2 stopped (SIGTERM) for 30 s")
    time.sleep(30)  # the outage itself, not a synchronisation
    with load.lock:
        during = {k: v - before.get(k, 0) for k, v in load.statuses.items()}
    assert during.get(202, 0) > 0, f"ingest keeps accepting while a shard is down: {during}"
    failures = insert_failures() - failures
    assert failures >= 1, "the consumers' inserts failed and were retried while the shard was down"
    up()
    log(f"shard 2 back; ingest answered {during} meanwhile, the consumers retried {failures:.0f} inserts")


def producer_broker(process):
    """The broker (of BROKERS) the process has the most connections to, from `ss`
    (iproute2): its producer's; a metadata connection to another broker may sit beside it."""
    out = subprocess.run(["ss", "-tnpH", "state", "established"], check=True, capture_output=True, text=True).stdout
    counts = {}
    for line in out.splitlines():
        if f"pid={process}," in line:
            peer = int(line.split()[3].rsplit(":", 1)[1])
            for name, port in BROKERS.items():
                if port == peer:
                    counts[name] = counts.get(name, 0) + 1
    return max(counts, key=counts.get) if counts else None


def broker_down(load):
    """SIGKILL of the broker the first ingest produces through; the others serve the same
    storage, and the producers fail over to them (every broker is in kafka.brokers). The
    first ingest itself must keep acknowledging."""
    name = eventually("ingest connected to a broker", 30, lambda: producer_broker(pid("ingest")))
    with load.lock:
        before = dict(load.by_ingest[INGESTS[0]])
    kill(name, "the Kafka broker the first ingest produces through")
    time.sleep(10)  # the outage itself
    with load.lock:
        during = {k: v - before.get(k, 0) for k, v in load.by_ingest[INGESTS[0]].items()}
    assert during.get(202, 0) > 0, f"the first ingest keeps acknowledging through the other brokers: {during}"
    up()
    wait_accepting(load)
    log(f"{name} back; while it was down the first ingest answered {during}")


def racing_assignments(experiment):
    user = f"racer-{RUN_TYPE[6:]}"
    variant = race_first_assignments(APIS, experiment, user)
    log("200 simultaneous first assignments over 2 apis: one variant, one new")
    return user, variant


def merged_once(experiment):
    """Merges until each event id of the run is one row on every replica (one replica per
    shard merges, the other follows through the replication log; a merge asked for while
    parts are still fetched is skipped, so it is asked again), then checks both replicas of
    each shard hold the same rows and the shards' rows = the distinct ids seen through the
    Distributed table. Returns the rows per node."""
    ours = f"type IN ('{RUN_TYPE}', '{BUY}')"

    def once():
        for n in (1, 3):
            sql(NODES[n - 1], "OPTIMIZE TABLE events_local FINAL")
            sql(NODES[n - 1], "OPTIMIZE TABLE exposures_local FINAL")
        rows = []
        for node in NODES:
            sql(node, "SYSTEM SYNC REPLICA events_local")
            sql(node, "SYSTEM SYNC REPLICA exposures_local")
            count, distinct = sql(node, f"SELECT count(), uniqExact(event_id) FROM events_local WHERE {ours}").split()
            exposures = sql(node, f"SELECT count() = uniqExact(user_id) FROM exposures_local WHERE experiment_id = {experiment}")
            if count != distinct or exposures != "1":
                return None
            rows.append(int(count))
        return rows
    rows = eventually("every event once on every replica", 180, once)
    assert rows[0] == rows[1] and rows[2] == rows[3], f"replicas differ: {rows}"
    distinct = int(sql(NODES[0], f"SELECT uniqExact(event_id) FROM events WHERE {ours}"))
    assert rows[0] + rows[2] == distinct, f"rows after merges {rows} for {distinct} distinct ids"
    return rows


def exposures_arrived(experiment, variants):
    def seen():
        rows = sql(NODES[0], f"SELECT user_id FROM exposures WHERE experiment_id = {experiment} GROUP BY user_id FORMAT TSV")
        return set(rows.split()) >= set(variants)
    eventually("an exposure of every assigned user", 180, seen)


def exposures_match(experiment, variants):
    """After merges: every user answered 200 has exactly one exposure row, of the variant
    answered, and one assignment row in Postgres, of that variant."""
    rows = sql(NODES[0], f"SELECT user_id, any(variant), count() FROM exposures "
                         f"WHERE experiment_id = {experiment} GROUP BY user_id FORMAT TSV")
    got = {u: (v, int(k)) for u, v, k in (line.split("\t") for line in rows.splitlines() if line)}
    wrong = [(u, v, got.get(u)) for u, v in variants.items() if got.get(u) != (v, 1)]
    assert not wrong, f"exposures that are not one row of the variant answered: {wrong[:5]}"
    psql = ["psql", "-X", "-qtAF", "\t", "-h", "127.0.0.1", "-p", os.environ.get("STACK_POSTGRES_PORT", "5433"),
            "-U", "abtest", "-d", "abtest", "-c",
            f"SELECT a.user_id, v.name FROM assignments a JOIN variants v ON v.id = a.variant_id "
            f"WHERE a.experiment_id = {experiment}"]
    out = subprocess.run(psql, check=True, capture_output=True, text=True).stdout
    stored = dict(line.split("\t") for line in out.splitlines() if line)
    wrong = [(u, v, stored.get(u)) for u, v in variants.items() if stored.get(u) != v]
    assert not wrong, f"assignment rows that disagree with the 200 answered: {wrong[:5]}"
    return len(variants)


def results_on_one_server(experiment):
    """Copies the experiment's exposures and the buy events (every row, duplicates included)
    into a database on the single 18.16 server, runs an api on it (single-node DDL, raw
    results), and compares its results with the cluster's."""
    lib("start_clickhouse")
    db = "chaos_copy_" + RUN_TYPE[6:]
    env = dict(os.environ)
    for line in subprocess.run(["bash", "-c", f"source '{ROOT}/scripts/lib.sh' && STACK_CLUSTER=0 stack_env"],
                               check=True, capture_output=True, text=True).stdout.splitlines():
        key, value = line.split("=", 1)
        env[key] = value
    env.update({"ABTEST_CLICKHOUSE__DATABASE": db, "ABTEST_API__LISTEN": COPY_API, "ABTEST_ROLLUP__ENABLED": "false"})
    api = os.path.join(ROOT, "target", "release", "api")
    subprocess.run([api, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for table, columns, where in [
            ("events", "event_id, user_id, type, timestamp, received_at, properties, inserted_at", f"type = '{BUY}'"),
            ("exposures", "experiment_id, user_id, variant, exposed_at, forced, attribute_keys, attribute_values, "
                          "exposure_id, inserted_at", f"experiment_id = {experiment}")]:
            rows = sql(NODES[0], f"SELECT {columns} FROM {table} WHERE {where} FORMAT TSV")
            sql(SINGLE, f"INSERT INTO {table} ({columns}) FORMAT TSV", database=db, body=rows.encode() + b"\n")
        with open(os.path.join(RUN, "chaos-copy-api.log"), "ab") as out:
            server = subprocess.Popen([api], env=env, stdout=out, stderr=out)
        try:
            copy = "http://" + COPY_API
            eventually("the copy's api", 60, lambda: request("GET", copy + "/readyz", key=None)[0] == 200)
            compared = []
            for query in [f"event_type={BUY}", f"event_type={BUY}&value_property=amount&cuped_days=0"]:
                answers = []
                for base in (APIS[0], copy):
                    status, body, _ = request("GET", f"{base}/experiments/{experiment}/results?{query}")
                    assert status == 200, (base, status, body[:300])
                    answer = json.loads(body)
                    answer.pop("window")
                    answers.append(answer)
                assert answers[0] == answers[1], f"{query}: cluster and one server differ:\n{answers[0]}\n{answers[1]}"
                compared.append(sum(v["users"] for v in answers[0]["variants"]))
            return compared
        finally:
            server.terminate()
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        sql(SINGLE, f"DROP DATABASE IF EXISTS {db}", database="default")


def main():
    started = time.time()
    up()
    status, body, _ = request("POST", APIS[0] + "/experiments", {"name": "chaos cluster", "variants": [
        {"name": "a", "allocation_percent": 50}, {"name": "b", "allocation_percent": 50}]})
    assert status == 201, body
    experiment = json.loads(body)["id"]
    with Load(senders=2, ingests=INGESTS) as load, Assigner(experiment) as assigner:
        wait_accepting(load)
        restarts = rolling_restart(load)
        kill("consumer-2", "a consumer")
        up()
        replica_down(load)
        shard_down(load)
        broker_down(load)
        racer, racer_variant = racing_assignments(experiment)
        wait_accepting(load)
    acked = load.acked | assigner.bought
    variants = dict(assigner.variants, **{racer: racer_variant})
    log(f"load stopped: {len(acked)} events acknowledged (ingest answered {load.statuses}), "
        f"{len(variants)} users assigned (apis answered {assigner.answers})")

    def found():
        rows = sql(NODES[0], f"SELECT toString(event_id) FROM events WHERE type IN ('{RUN_TYPE}', '{BUY}') FORMAT TSV")
        ids = set(rows.split())
        return ids if acked <= ids else None
    ids = eventually("every acknowledged event on the cluster", 600, found)
    exposures_arrived(experiment, variants)
    counts = merged_once(experiment)
    assigned = exposures_match(experiment, variants)
    users = results_on_one_server(experiment)
    log(f"PASS in {time.time() - started:.0f} s: {len(acked)} acknowledged events all on the cluster, lost 0; "
        f"{counts[0] + counts[2]} distinct ids ({counts[0] + counts[2] - len(acked)} more from answers lost in faults), "
        f"rows after merges {counts[0]} + {counts[2]} (shards) = distinct ids, double-counted 0; {restarts} rolling restarts, "
        f"1 consumer SIGKILL, 1 replica SIGKILL, 1 shard down 30 s, 1 of 3 brokers SIGKILL; {assigned} assigned users "
        f"with one assignment row and one exposure row of the variant answered; results equal on one server "
        f"(users per query {users})")


if __name__ == "__main__":
    run(main, "chaos --cluster")
