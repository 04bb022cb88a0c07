#!/usr/bin/env python3
"""chdb shim: a small subset of ClickHouse's HTTP interface served by chdb (ClickHouse
26.x embedded in Python), so that the Rust `clickhouse` crate (Compression::None,
with_validation(false)) and curl can use a current engine as if it were a server.

The local stack's "current ClickHouse" (scripts/lib.sh start_chdb; tests compare every
statement of ours on it and on the local 18.16: api/tests/engines.rs, and the rollup's
seals, which need sessions: api/tests/engines_rollup.rs).
Start:  .run/chdb-venv/bin/python scripts/chdb-server.py --data .run/chdb --port 8124
Needs:  python3 (stdlib) + `pip install chdb-core==26.9.0` (module `chdb`).

Supported:
  GET|HEAD /ping, GET / (no query), GET /replicas_status      -> "Ok.\n"
  GET|POST /?query=...   query in the URL and/or the body (concatenated, like ClickHouse)
  database=            -> USE <db> before the statement (default: `default`)
  default_format=      -> output format unless the SQL has its own FORMAT (default TSV)
  INSERT INTO t[(cols)] [SETTINGS ...] FORMAT <Fmt>  + data in the body (RowBinary, TSV,
                          JSONEachRow, ... any chdb input format; chunked bodies fine)
                          -> chdb send_insert(); one atomic insert per request
  INSERT ... VALUES / INSERT ... SELECT / DDL / SELECT -> run as SQL
  param_<name>=        -> query parameters {name:Type}
  other URL params     -> applied as settings for this request only (SET, then restored);
                          HTTP-only params (user, password, wait_end_of_query, query_id,
                          ...) are ignored; an unknown setting is an error (115)
  session_id=          -> a session: its own chdb connection (chdb.connect on the same data
                          folder), so its current database (USE), its SET settings and its
                          TEMPORARY tables are its own and last across its requests, as on
                          a server; other requests share one connection and, without a
                          session, USE and SET last for their request only (SET: a no-op).
                          database= applies to its request; without it a session's request
                          runs in the database of the session's last USE (else `default`).
                          session_timeout= (default 60 s, at most 3600: else code 374) after
                          its last request the session is closed, temporary tables with it;
                          session_check=1: code 372 if it does not exist; close_session=1
                          closes it after the request; a second request while one runs on
                          the same session: code 373 (SESSION_IS_LOCKED), as ClickHouse.
                          Statements run one at a time across all connections.
  auth: X-ClickHouse-User/Key, basic auth, user/password params: accepted, not checked
  Content-Encoding gzip/deflate request bodies; gzip responses when
  enable_http_compression=1 and Accept-Encoding: gzip
  errors: HTTP 4xx/5xx, X-ClickHouse-Exception-Code, body "Code: N. DB::Exception: ..."
Not supported: compress=1/decompress=1 (ClickHouse's LZ4 block framing), progress
headers, streaming of results (each result is built in memory), HTTPS, the native TCP
protocol.
"""
import argparse
import base64
import gzip
import http.server
import json
import os
import re
import signal
import socketserver
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
import zlib

# HTTP parameters that ClickHouse's HTTP handler consumes itself (not settings).
HTTP_ONLY_PARAMS = {
    "query", "database", "default_format", "user", "password", "quota_key", "compress",
    "decompress", "query_id", "session_id", "session_timeout", "session_check",
    "close_session", "buffer_size", "wait_end_of_query", "role", "stacktrace",
    "client_protocol_version", "http_wait_end_of_query", "http_response_buffer_size",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "enable_http_compression", "http_zlib_compression_level", "add_http_cors_header",
    "http_native_compression_disable_checksumming_on_decompress", "with_column_types",
}

# ClickHouse-like HTTP status per exception code (the crate only needs "not 200").
STATUS_BY_CODE = {
    62: 400, 46: 400, 47: 400, 43: 400, 53: 400, 36: 400, 27: 400, 26: 400, 6: 400,
    33: 400, 115: 400, 117: 400, 72: 400, 69: 400, 70: 400, 44: 400, 16: 400,
    60: 404, 81: 404, 48: 501, 516: 403, 497: 403, 159: 500,
}

CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8",
    "json": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
    "jsoncompact": "application/json; charset=UTF-8",
}


class ShimError(Exception):
    """An exception with ClickHouse's code; str() is the text sent to the client."""

    def __init__(self, code, name, text, full=None):
        super().__init__(full or f"Code: {code}. DB::Exception: {text}. ({name})")
        self.code = code


def log(msg):
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}\n")
    sys.stderr.flush()


# --- a little SQL scanning: quotes, comments, parentheses -------------------------------

def _scan_top_level_words(sql):
    """Yields (start, end, WORD_UPPER) of identifiers/keywords at paren depth 0,
    outside string literals, quoted identifiers and comments."""
    i, n, depth = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c in "'\"`":
            q = c
            i += 1
            while i < n:
                if sql[i] == "\\":
                    i += 2
                    continue
                if sql[i] == q:
                    if i + 1 < n and sql[i + 1] == q:  # doubled quote
                        i += 2
                        continue
                    break
                i += 1
            i += 1
        elif sql.startswith("--", i) or sql.startswith("#!", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "(" or c == "[":
            depth += 1
            i += 1
        elif c == ")" or c == "]":
            depth -= 1
            i += 1
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            if depth == 0:
                yield i, j, sql[i:j].upper()
            i = j
        else:
            i += 1


def first_keyword(sql):
    for _, _, w in _scan_top_level_words(sql):
        return w
    return ""


def split_insert(sql):
    """For `INSERT INTO ... FORMAT <Fmt>[ data]` returns (prefix, fmt, data_offset) where
    prefix is the INSERT without FORMAT and data starts at sql[data_offset:]. Returns
    None for INSERT ... VALUES / SELECT (run as plain SQL) or non-INSERT statements."""
    words = _scan_top_level_words(sql)
    first = next(words, None)
    if first is None or first[2] != "INSERT":
        return None
    for start, end, w in words:
        if w in ("VALUES", "SELECT", "WITH"):
            return None
        if w == "FORMAT":
            m = re.compile(r"\s+([A-Za-z_][A-Za-z0-9_]*)").match(sql, end)
            if not m:
                raise ShimError(62, "SYNTAX_ERROR", "Syntax error: expected format name after FORMAT")
            fmt = m.group(1)
            # ClickHouse: data starts after the newline if there is one, else after
            # all whitespace.
            k = m.end()
            while k < len(sql) and sql[k] in " \t\r":
                k += 1
            if k < len(sql) and sql[k] == "\n":
                k += 1
            else:
                while k < len(sql) and sql[k] in " \t\r\n\f":
                    k += 1
            return sql[:start].rstrip(), fmt, k
    return None


def sql_string(v):
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- the engine ------------------------------------------------------------------------

class Conn:
    """One chdb connection. chdb keeps a session context per connection (`chdb.connect`:
    "any number of connections to the same database path may be open at the same time"):
    its current database (`USE`), its `SET` settings and its temporary tables, over the
    same databases and tables as every other connection."""

    def __init__(self, raw, sticky):
        self.raw = raw
        self.sticky = sticky        # a session's: USE and SET last beyond the request
        self.current_db = None      # what the shim last USEd on it (None: unknown)
        self.session_db = "default"  # the database of requests without `database=`
        self.base = {}              # settings SET in the session (restored after a request's)


class HttpSession:
    """A ClickHouse HTTP session (`session_id=`): a connection of its own, used by one
    request at a time, closed `timeout` seconds after its last request ended."""

    def __init__(self, conn, timeout):
        self.conn = conn
        self.timeout = timeout
        self.last_used = time.monotonic()
        self.busy = False


DEFAULT_SESSION_TIMEOUT, MAX_SESSION_TIMEOUT = 60, 3600  # ClickHouse's defaults


class Engine:
    def __init__(self, path):
        import chdb  # noqa: F401  (after TZ is set)
        from chdb import session
        self.path = path
        self.chdb = chdb
        self.main = Conn(session.Session(path), sticky=False)
        self.lock = threading.Lock()  # one statement at a time, whatever the connection
        self.sessions = {}
        self.sessions_lock = threading.Lock()
        self.version = self._q(self.main, "SELECT version()", "TSV").decode().strip()
        # Settings that exist, with their values at startup (for restoring).
        tsv = self._q(self.main, "SELECT name, value FROM system.settings", "TSVRaw").decode()
        self.settings = {}
        for line in tsv.splitlines():
            name, _, value = line.partition("\t")
            self.settings[name] = value
        aliases = self._q(
            self.main, "SELECT alias_name, name FROM system.settings_aliases", "TSVRaw").decode() \
            if self._exists_table("system", "settings_aliases") else ""
        self.canonical = {}
        for line in aliases.splitlines():
            a, _, n = line.partition("\t")
            if n in self.settings:
                self.settings.setdefault(a, self.settings[n])
                self.canonical[a] = n

    def _exists_table(self, db, table):
        r = self._q(self.main, f"SELECT count() FROM system.tables WHERE database = {sql_string(db)} "
                    f"AND name = {sql_string(table)}", "TSV")
        return r.strip() == b"1"

    def _q(self, conn, sql, fmt, params=None):
        try:
            r = conn.raw.query(sql, fmt, params=params) if params else conn.raw.query(sql, fmt)
        except Exception as e:  # ChdbError / RuntimeError carry ClickHouse's text
            raise self._wrap(e) from None
        return r.bytes() if r is not None else b""

    def _wrap(self, e):
        text = str(e)
        i = text.find("Code: ")
        if i > 0:
            text = text[i:]
        m = re.match(r"Code: (\d+)\.", text)
        if "(version " not in text:
            text = f"{text} (version {self.version})"
        return ShimError(int(m.group(1)) if m else 1000, "", "", full=text)

    def _use(self, conn, db):
        if db != conn.current_db:
            conn.current_db = None
            self._q(conn, f"USE `{db.replace('`', '``')}`", "TSV")
            conn.current_db = db

    # --- sessions (ClickHouse's HTTP session_id, session_timeout, session_check,
    # close_session; codes 372 SESSION_NOT_FOUND, 373 SESSION_IS_LOCKED,
    # 374 INVALID_SESSION_TIMEOUT) ---

    def acquire(self, session_id, timeout, check):
        """The session `session_id`, marked busy (a request at a time, as ClickHouse)."""
        try:
            timeout = DEFAULT_SESSION_TIMEOUT if timeout in (None, "") else int(timeout)
        except ValueError:
            raise ShimError(374, "INVALID_SESSION_TIMEOUT", f"Invalid session timeout: '{timeout}'")
        if timeout > MAX_SESSION_TIMEOUT:
            raise ShimError(374, "INVALID_SESSION_TIMEOUT",
                            f"Session timeout '{timeout}' is larger than max_session_timeout: "
                            f"{MAX_SESSION_TIMEOUT}. Maximum session timeout could be modified "
                            f"in configuration file")
        with self.sessions_lock:
            s = self.sessions.get(session_id)
            if s is None:
                if check:
                    raise ShimError(372, "SESSION_NOT_FOUND", f"Session {session_id} not found")
                with self.lock:
                    s = HttpSession(Conn(self.chdb.connect(self.path), sticky=True), timeout)
                self.sessions[session_id] = s
            if s.busy:
                raise ShimError(373, "SESSION_IS_LOCKED", f"Session {session_id} is locked by a concurrent client")
            s.busy = True
            s.timeout = timeout
            return s

    def release(self, session_id, s, close):
        with self.sessions_lock:
            s.busy = False
            s.last_used = time.monotonic()
            if close and self.sessions.get(session_id) is s:
                del self.sessions[session_id]
                self._close(s)

    def reap(self):
        """Closes the sessions whose timeout has passed since their last request."""
        now = time.monotonic()
        with self.sessions_lock:
            expired = [k for k, s in self.sessions.items() if not s.busy and s.last_used + s.timeout < now]
            for k in expired:
                self._close(self.sessions.pop(k))

    def _close(self, s):
        with self.lock:
            try:
                s.conn.raw.close()  # its temporary tables go with it
            except Exception as e:
                log(f"could not close a session's connection: {e}")

    def run(self, conn, sql, database, fmt, settings, params, data_file=None):
        """Runs one statement on `conn`; data_file: (prefix, fmt, file object) for INSERT ...
        FORMAT; database None: the connection's own (a session's, changed by USE).
        Returns (body bytes, summary dict)."""
        with self.lock:
            self._use(conn, database if database is not None else conn.session_db)
            applied = []
            try:
                for k, v in settings.items():
                    if k not in self.settings:
                        raise ShimError(115, "UNKNOWN_SETTING", f"Unknown setting '{k}'")
                    self._q(conn, f"SET {k} = {sql_string(v)}", "TSV")
                    applied.append(k)
                if data_file is not None:
                    return b"", self._insert(conn, data_file)
                out = self._q(conn, sql, fmt, params)
                kw = first_keyword(sql)
                if kw == "USE":
                    conn.current_db = None
                    if conn.sticky:
                        conn.session_db = self._q(conn, "SELECT currentDatabase()", "TSVRaw").decode().strip()
                elif kw == "SET" and conn.sticky:
                    changed = self._q(conn, "SELECT name, value FROM system.settings WHERE changed", "TSVRaw")
                    conn.base = dict(line.partition("\t")[::2] for line in changed.decode().splitlines())
                return out, {}
            finally:
                for k in applied:
                    before = conn.base.get(self.canonical.get(k, k), self.settings[k])
                    try:
                        self._q(conn, f"SET {k} = {sql_string(before)}", "TSV")
                    except Exception as e:  # keep serving; log it
                        log(f"could not restore setting {k}: {e}")

    def _insert(self, conn, data_file):
        prefix, in_fmt, f = data_file
        try:
            ins = conn.raw.send_insert(prefix, in_fmt)
        except Exception as e:
            raise self._wrap(e) from None
        try:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                ins.append(chunk)
            res = ins.finish()
        except Exception as e:
            try:
                ins.cancel()
            except Exception:
                pass
            raise self._wrap(e) from None
        return {"written_rows": str(res.rows_written), "written_bytes": str(res.bytes_written)}


# --- HTTP ------------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chdb-shim"
    disable_nagle_algorithm = True  # else headers+body in two writes cost a 40 ms delayed ACK
    engine: Engine = None
    verbose = False

    def log_message(self, fmt, *args):
        if self.verbose:
            log("%s %s" % (self.address_string(), fmt % args))

    # body: Content-Length or chunked, spooled to disk above 64 MiB
    def _read_body(self):
        spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ShimError(33, "CANNOT_READ_ALL_DATA", "Unexpected end of chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                remaining = size
                while remaining:
                    b = self.rfile.read(min(remaining, 1 << 20))
                    if not b:
                        raise ShimError(33, "CANNOT_READ_ALL_DATA", "Unexpected end of chunked body")
                    spool.write(b)
                    remaining -= len(b)
                self.rfile.readline(3)  # CRLF after the chunk
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                b = self.rfile.read(min(remaining, 1 << 20))
                if not b:
                    raise ShimError(33, "CANNOT_READ_ALL_DATA", "Unexpected end of body")
                spool.write(b)
                remaining -= len(b)
        spool.seek(0)
        enc = (self.headers.get("Content-Encoding") or "").lower().strip()
        if enc in ("gzip", "deflate", "x-gzip"):
            raw = spool.read()
            spool.close()
            data = gzip.decompress(raw) if enc != "deflate" else zlib.decompress(raw)
            spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
            spool.write(data)
            spool.seek(0)
        elif enc not in ("", "identity", "none"):
            raise ShimError(48, "NOT_IMPLEMENTED", f"Content-Encoding {enc} is not supported by the chdb shim")
        return spool

    def _send(self, status, body, headers=None, gzip_ok=False):
        headers = dict(headers or {})
        if gzip_ok and body:
            body = gzip.compress(body, 3)
            headers["Content-Encoding"] = "gzip"
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, e, query_id):
        code = getattr(e, "code", 1000)
        text = str(e)
        if not text.startswith("Code:"):
            text = f"Code: {code}. DB::Exception: {text}. (STD_EXCEPTION)"
        if "(version " not in text:
            text = f"{text} (version {self.engine.version})"
        body = (text.rstrip("\n") + "\n").encode("utf-8", "replace")
        self._send(STATUS_BY_CODE.get(code, 500), body, {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(code),
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Server-Display-Name": "chdb-shim",
        })

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def _handle(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        params = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        params = {k: v[-1] for k, v in params.items()}
        query_id = params.get("query_id") or str(uuid.uuid4())
        started = time.monotonic()
        try:
            if path in ("/ping", "/replicas_status") or (path == "/" and "query" not in params
                                                         and self.command in ("GET", "HEAD")):
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            if path != "/":
                self._send(404, b"There is no handle " + path.encode() + b"\n",
                           {"Content-Type": "text/plain; charset=UTF-8"})
                return
            if params.get("compress") == "1" or params.get("decompress") == "1":
                raise ShimError(48, "NOT_IMPLEMENTED",
                                "compress=1/decompress=1 (ClickHouse LZ4 framing) is not supported "
                                "by the chdb shim: use Compression::None")
            body = self._read_body() if self.command == "POST" else None
            url_sql = params.get("query", "")
            session_id = params.get("session_id") or ""
            # Without `database=` a session's request runs in the session's database (USE).
            database = params.get("database") or self.headers.get("X-ClickHouse-Database") \
                or (None if session_id else "default")
            fmt = params.get("default_format") or self.headers.get("X-ClickHouse-Format") or "TabSeparated"
            settings = {k: v for k, v in params.items()
                        if k not in HTTP_ONLY_PARAMS and not k.startswith("param_")}
            qparams = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
            data_file = None
            ins = split_insert(url_sql) if url_sql else None
            if ins is not None and ins[2] >= len(url_sql):
                # The crate's form: the whole INSERT in the URL, the body is pure data.
                data_file = (ins[0], ins[1], body)
                sql = url_sql
            else:
                raw = body.read() if body is not None else b""
                text = url_sql + (raw.decode("utf-8", "surrogateescape") if raw else "")
                ins = split_insert(text)
                if ins is not None:
                    prefix, in_fmt, off = ins
                    f = tempfile.SpooledTemporaryFile(max_size=64 << 20)
                    f.write(text[off:].encode("utf-8", "surrogateescape"))
                    f.seek(0)
                    data_file = (prefix, in_fmt, f)
                sql = text
            if not sql.strip():
                raise ShimError(62, "SYNTAX_ERROR", "Empty query")
            kw = first_keyword(sql)
            if kw == "SET" and data_file is None and not session_id:
                # Without a session a SET lasts for its own request only: a no-op.
                self._send(200, b"", {"X-ClickHouse-Query-Id": query_id})
                return
            if self.verbose:
                log(f"query session={session_id} db={database} fmt={fmt} settings={settings} sql={sql[:200]!r}")
            self.engine.reap()
            if session_id:
                s = self.engine.acquire(session_id, params.get("session_timeout"), params.get("session_check") == "1")
                try:
                    out, summary = self.engine.run(s.conn, sql, database, fmt, settings, qparams, data_file)
                finally:
                    self.engine.release(session_id, s, params.get("close_session") == "1")
            else:
                out, summary = self.engine.run(self.engine.main, sql, database, fmt, settings, qparams, data_file)
            gz = (params.get("enable_http_compression") == "1"
                  and "gzip" in (self.headers.get("Accept-Encoding") or ""))
            self._send(200, out, {
                "Content-Type": CONTENT_TYPES.get(fmt.lower(), "application/octet-stream")
                if kw in ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN") else "text/plain; charset=UTF-8",
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Format": fmt,
                "X-ClickHouse-Timezone": "UTC",
                "X-ClickHouse-Server-Display-Name": "chdb-shim",
                "X-ClickHouse-Summary": json.dumps(dict(
                    {"elapsed_ns": str(int((time.monotonic() - started) * 1e9))}, **summary)),
            }, gzip_ok=gz)
        except ShimError as e:
            self._error(e, query_id)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug in the shim: still answer like a server
            traceback.print_exc()
            self._error(ShimError(1001, "STD_EXCEPTION", f"chdb shim: {type(e).__name__}: {e}"), query_id)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="session directory (databases, MergeTree parts)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8124)
    ap.add_argument("--timezone", default="UTC", help="server time zone (TZ) for DateTime")
    ap.add_argument("--pidfile")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    os.environ["TZ"] = a.timezone
    time.tzset()
    t0 = time.monotonic()
    os.makedirs(a.data, exist_ok=True)
    Handler.engine = Engine(os.path.abspath(a.data))
    Handler.verbose = a.verbose
    srv = Server((a.host, a.port), Handler)
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"chdb shim: ClickHouse {Handler.engine.version} (chdb), data {a.data}, "
        f"listening on http://{a.host}:{a.port} (ready in {time.monotonic() - t0:.2f}s)")
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
        with Handler.engine.sessions_lock:
            for sess in list(Handler.engine.sessions.values()):
                Handler.engine._close(sess)
        with Handler.engine.lock:
            Handler.engine.main.raw.close()
        log("chdb shim: stopped")


if __name__ == "__main__":
    main()
