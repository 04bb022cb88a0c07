#!/usr/bin/env python3
"""Fault injection against the running local stack (scripts/up), with exact counts.

Events flow from a load generator into ingest the whole time; every event carries a
client-made event_id and the run's own type, and every id that got a 2xx is recorded.
Faults, one after the other:
  1. consumer killed with SIGKILL, restarted by scripts/up
  2. ClickHouse stopped for 30 s (SIGTERM by pid), restarted by scripts/up
  3. the Kafka broker (nisshi) killed with SIGKILL for 10 s: ingest answers 503 in bound,
     and nothing acknowledged before is lost (its storage survives the crash)
  4. Postgres stopped: new assignments 503 with JSON, events and results keep working,
     recovery without restarting the API
  5. a poison message in the topic: DLQ, the consumer moves on
  6. 200 simultaneous first assignments of one user: one variant, one row, one exposure
  7. SIGTERM to each binary under load, restarted by scripts/up
  8. a backlog of 1 M events (BACKLOG) sent while the consumer is stopped, then drained
Then: every acknowledged event is in ClickHouse, and counted once.
Run by scripts/chaos (which .ci/run calls); needs only the Python standard library.
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import quote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, ".run")
KEY = "my_secret_api_key_123"
API = "http://127.0.0.1:" + os.environ.get("ABTEST_API__LISTEN", "127.0.0.1:9000").rsplit(":", 1)[1]
INGEST = "http://127.0.0.1:" + os.environ.get("ABTEST_INGEST__LISTEN", "127.0.0.1:9001").rsplit(":", 1)[1]
CONSUMER = "http://127.0.0.1:" + os.environ.get("ABTEST_CONSUMER__LISTEN", "127.0.0.1:9002").rsplit(":", 1)[1]
CH = "http://127.0.0.1:" + os.environ.get("STACK_CLICKHOUSE_HTTP_PORT", "8123")
KAFKA = "127.0.0.1:" + os.environ.get("STACK_KAFKA_PORT", "9092")
RUN_TYPE = "chaos_" + uuid.uuid4().hex[:10]
ACK_TIMEOUT = 5.0
BACKLOG = int(os.environ.get("CHAOS_BACKLOG", "1000000"))


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def request(method, url, body=None, key=KEY, timeout=15):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read(), {k.lower(): v for k, v in e.headers.items()}


def ch(sql, base=CH, database="abtest", body=None):
    """A statement on the ClickHouse at `base` (over HTTP); with `body`, the statement goes
    in the URL and `body` is its data (an INSERT's rows)."""
    url = f"{base}/?database={database}" + ("" if body is None else "&query=" + quote(sql))
    status, answer, _ = request("POST", url, sql.encode() if body is None else body, key=None, timeout=120)
    assert status == 200, f"ClickHouse {status}: {answer[:300]!r}: {sql[:200]}"
    return answer.decode().strip()


def eventually(what, timeout, check):
    deadline = time.time() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except (OSError, AssertionError):
            pass
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def pid(name):
    with open(os.path.join(RUN, f"{name}.pid")) as f:
        return int(f.read().split()[0])


def alive(p):
    try:
        os.kill(p, 0)
        return True
    except OSError:
        return False


def up():
    """scripts/up with CHAOS_UP_ARGS (scripts/chaos --cluster: the cluster and several
    instances): starts what is down, waits until it is ready."""
    args = os.environ.get("CHAOS_UP_ARGS", "").split()
    subprocess.run([os.path.join(ROOT, "scripts", "up"), *args], check=True, stdout=subprocess.DEVNULL)


def metric(base, name):
    _, body, _ = request("GET", base + "/prometheus", key=None)
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.decode().splitlines() if l.startswith(name))


class Load:
    """Sends batches of 50 events to ingest until stopped, about 1000 events/s in all (sender
    i to ingests[i % len(ingests)]); records every 2xx'd event id."""

    def __init__(self, senders=2, ingests=(INGEST,)):
        self.ingests = ingests
        self.acked, self.statuses, self.slow = set(), {}, []
        self.by_ingest = {i: {} for i in ingests}  # the statuses of each ingest
        self.lock, self.stop_flag = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(ingests[i % len(ingests)],), daemon=True)
                        for i in range(senders)]

    def run(self, ingest):
        while not self.stop_flag.is_set():
            ids = [str(uuid.uuid4()) for _ in range(50)]
            batch = [{"event_id": i, "user_id": f"load-{i[:6]}", "type": RUN_TYPE, "properties": {"v": 1}} for i in ids]
            started = time.time()
            try:
                status, _, _ = request("POST", ingest + "/events/batch", batch, timeout=30)
            except OSError:
                status = "connection"
            elapsed = time.time() - started
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                self.by_ingest[ingest][status] = self.by_ingest[ingest].get(status, 0) + 1
                if status == 202:
                    self.acked.update(ids)
                elif status == 503 and elapsed > ACK_TIMEOUT + 2:
                    self.slow.append(elapsed)
            time.sleep(max(0.0, 0.1 - elapsed))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join()

    def accepted(self):
        with self.lock:
            return len(self.acked)


def wait_accepting(load, more=500):
    start = load.accepted()
    eventually("ingest to accept events", 60, lambda: load.accepted() >= start + more)


def kill_consumer(load):
    p = pid("consumer")
    os.kill(p, 9)
    eventually("consumer to die", 10, lambda: not alive(p))
    log(f"consumer (pid {p}) killed with SIGKILL; {load.accepted()} events acknowledged so far")
    wait_accepting(load)
    up()
    assert pid("consumer") != p and alive(pid("consumer"))
    log("consumer restarted by scripts/up")


def stop_clickhouse(load):
    failures_before = metric(CONSUMER, "abtest_consumer_insert_failures_total")
    p = pid("clickhouse")
    os.kill(p, 15)
    eventually("ClickHouse to stop", 60, lambda: not alive(p))
    log("ClickHouse stopped for 30 s")
    before = {k: v for k, v in load.statuses.items()}
    time.sleep(30)  # the outage itself, not a synchronisation
    during = {k: load.statuses.get(k, 0) - before.get(k, 0) for k in load.statuses}
    assert during.get(202, 0) > 0 and all(v == 0 for k, v in during.items() if k != 202), \
        f"ingest must keep accepting while ClickHouse is down: {during}"
    failures = metric(CONSUMER, "abtest_consumer_insert_failures_total") - failures_before
    assert failures >= 1, "the consumer's metrics show the retries"
    up()
    log(f"ClickHouse back; the consumer retried {failures:.0f} inserts meanwhile; ingest answered {during}")


def broker_down(load):
    p = pid("kafka")
    os.kill(p, 9)
    eventually("the broker to die", 10, lambda: not alive(p))
    log("Kafka broker killed with SIGKILL, down for 10 s")
    t0 = time.time()
    event = {"user_id": "probe", "type": RUN_TYPE, "event_id": str(uuid.uuid4())}
    status, body, headers = request("POST", INGEST + "/events", event)
    elapsed = time.time() - t0
    assert status == 503 and "retry-after" in headers, (status, body)
    assert elapsed <= ACK_TIMEOUT + 1.5, f"503 after {elapsed:.1f}s, bound is {ACK_TIMEOUT}s"
    time.sleep(10)  # the outage itself
    up()
    wait_accepting(load)
    log(f"broker back (same storage); 503 answered in {elapsed:.2f}s; ingest accepts again")


def stop_postgres(experiment):
    subprocess.run(["bash", "-c", f"source '{ROOT}/scripts/lib.sh' && stop_postgres"], check=True, stdout=subprocess.DEVNULL)
    log("Postgres stopped")
    status, body, _ = request("GET", f"{API}/experiments/{experiment}/assignment/pg-down-user")
    assert status == 503 and json.loads(body)["error"] == "unavailable", (status, body)
    status, body, _ = request("POST", API + "/events", {"user_id": "pg-down-user", "type": RUN_TYPE + "_api"})
    assert status == 202, (status, body)
    status, body, _ = request("GET", f"{API}/experiments/{experiment}/results?event_type=purchase")
    assert status == 200, ("results from the cached experiment", status, body)
    up()
    status, body, _ = eventually("assignment after Postgres is back", 60, lambda: (lambda r: r if r[0] == 200 else None)(
        request("GET", f"{API}/experiments/{experiment}/assignment/pg-down-user")))
    log("Postgres back: assignments work again without restarting the API")


def poison():
    dlq_before = metric(CONSUMER, "abtest_consumer_dlq_messages_total")
    nisshi = subprocess.run(["bash", "-c", f"source '{ROOT}/scripts/lib.sh' && nisshi_bin"], check=True,
                            capture_output=True, text=True).stdout.strip()
    message = json.dumps({"key": "poison", "value": "{not an envelope"}) + "\n"
    subprocess.run([nisshi, "cat", "produce", "--broker", f"tcp://{KAFKA}", "--silent", "events"],
                   input=message.encode(), check=True)
    eventually("the poison message in the DLQ", 60, lambda: metric(CONSUMER, "abtest_consumer_dlq_messages_total") >= dlq_before + 1)
    log("poison message went to the DLQ")


def race_first_assignments(apis, experiment, user):
    """200 simultaneous first assignments of one user, request i through apis[i % len]:
    every one answered 200, with one variant, exactly one of them new. Returns the variant."""
    results = []
    def one(i):
        results.append(request("GET", f"{apis[i % len(apis)]}/experiments/{experiment}/assignment/{user}"))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bodies = [json.loads(b) for s, b, _ in results if s == 200]
    assert len(bodies) == 200, [s for s, _, _ in results if s != 200][:5]
    assert len({b["variant"] for b in bodies}) == 1, bodies[:3]
    assert sum(1 for b in bodies if b["new"]) == 1, bodies[:3]
    return bodies[0]["variant"]


def racing_assignments(experiment):
    race_first_assignments([API], experiment, "racer")
    eventually("one exposure in ClickHouse", 60,
               lambda: ch(f"SELECT count() FROM exposures FINAL WHERE experiment_id = {experiment} AND user_id = 'racer'") == "1")
    rows = subprocess.run(["psql", "-X", "-qtA", "-h", "127.0.0.1", "-p", os.environ.get("STACK_POSTGRES_PORT", "5433"), "-U", "abtest", "-d", "abtest",
                           "-c", f"SELECT count(*) FROM assignments WHERE experiment_id = {experiment} AND user_id = 'racer'"],
                          check=True, capture_output=True, text=True).stdout.strip()
    assert rows == "1", rows
    log("200 simultaneous first assignments: one variant, one row, one exposure")


def sigterm_each(load):
    for name in ["ingest", "consumer", "api"]:
        p = pid(name)
        os.kill(p, 15)
        eventually(f"{name} to exit", 60, lambda: not alive(p))
        up()
        wait_accepting(load, 200)
        log(f"{name} stopped with SIGTERM under load and restarted")


def backlog():
    """Stops the consumer, sends BACKLOG events as fast as ingest takes them (batches of
    1000 from 4 threads), starts the consumer again and waits for all of them: the broker
    keeps what it acknowledged, however far behind the consumer is."""
    p = pid("consumer")
    os.kill(p, 15)
    eventually("the consumer to stop", 60, lambda: not alive(p))
    acked, lock, next_batch = set(), threading.Lock(), iter(range(BACKLOG // 1000))
    def send():
        while True:
            with lock:
                if next(next_batch, None) is None:
                    return
            ids = [str(uuid.uuid4()) for _ in range(1000)]
            batch = [{"event_id": i, "user_id": f"backlog-{i[:8]}", "type": RUN_TYPE} for i in ids]
            for _ in range(20):
                status, _, _ = request("POST", INGEST + "/events/batch", batch, timeout=60)
                if status == 202:
                    with lock:
                        acked.update(ids)
                    break
                time.sleep(0.5)
    started = time.time()
    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent_in = time.time() - started
    assert len(acked) == BACKLOG, f"only {len(acked)} of {BACKLOG} backlog events acknowledged"
    log(f"{BACKLOG} events acknowledged in {sent_in:.0f} s with the consumer stopped")
    started = time.time()
    up()
    eventually("the backlog drained", 1800, lambda: int(ch(
        f"SELECT uniqExact(event_id) FROM events WHERE type = '{RUN_TYPE}' AND user_id LIKE 'backlog-%'")) == BACKLOG)
    log(f"backlog of {BACKLOG} drained in {time.time() - started:.0f} s, nothing lost")
    return acked


def main():
    up()
    status, body, _ = request("POST", API + "/experiments", {"name": "chaos", "variants": [
        {"name": "a", "allocation_percent": 50}, {"name": "b", "allocation_percent": 50}]})
    assert status == 201, body
    experiment = json.loads(body)["id"]
    request("GET", f"{API}/experiments/{experiment}/results?event_type=purchase")  # warm the cache
    with Load() as load:
        wait_accepting(load)
        kill_consumer(load)
        stop_clickhouse(load)
        broker_down(load)
        stop_postgres(experiment)
        poison()
        racing_assignments(experiment)
        sigterm_each(load)
        wait_accepting(load)
    acked = load.acked | backlog()
    log(f"load stopped: {len(acked)} events acknowledged; answers {load.statuses}")
    assert not load.slow, f"503s slower than the bound: {load.slow[:5]}"

    table = "chaos_acked_" + RUN_TYPE[6:]
    ch(f"CREATE TABLE {table} (event_id UUID) ENGINE = Memory")
    try:
        ch(f"INSERT INTO {table} FORMAT TSV\n" + "\n".join(acked))
        found = eventually("every acknowledged event in ClickHouse", 120, lambda: (lambda n: n if n == len(acked) else None)(
            int(ch(f"SELECT uniqExact(event_id) FROM events WHERE type = '{RUN_TYPE}' AND event_id IN (SELECT event_id FROM {table})"))))
        distinct = int(ch(f"SELECT uniqExact(event_id) FROM events WHERE type = '{RUN_TYPE}'"))
        ch("OPTIMIZE TABLE events FINAL")
        final = int(ch(f"SELECT count() FROM events FINAL WHERE type = '{RUN_TYPE}'"))
    finally:
        ch(f"DROP TABLE IF EXISTS {table}")
    assert final == distinct, f"after merges each event id is one row: {final} rows for {distinct} ids"
    log(f"PASS: {found} of {len(acked)} acknowledged events in ClickHouse, none lost; "
        f"{distinct} distinct ids ({distinct - found} more from 503'd requests that reached Kafka anyway), "
        f"{final} rows after merges")



def run(main, name):
    """Runs a fault script's main: one line of result, exit 1 on a failed check."""
    try:
        main()
    except AssertionError as e:
        log(f"FAIL: {e}")
        print(f"{name}: 0 passed, 1 failed")
        sys.exit(1)
    print(f"{name}: 1 passed, 0 failed")


if __name__ == "__main__":
    run(main, "chaos")
