"""Reference evaluator of docs/assignment.md: which variant a user gets, computed locally.

Standard library only (Python 3.8+). Gives every user the same variant as the api would on
its first assignment of that user (the api then remembers it; this module has no memory):

    config = json.load(open("config.json"))        # the body of GET /sdk/config
    evaluate(config, 7, "user-42", {"country": "FR"}, "2026-12-01T00:00:00Z")
    # -> {"variant": "blue_button", "reason": "assigned"}

or with `Client("http://localhost:9000", "my-api-key").evaluate(7, "user-42")`.
"""
import hashlib
import json
import math
import re
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

from abtest_conditions import matches, validate_condition  # noqa: F401 (re-exported)

BASIS_POINTS = 10000
FNV_OFFSET, FNV_PRIME = 0x811C9DC5, 0x01000193
RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
                     r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def bucket(salt, user_id):
    """Hash `sha256`: first 8 bytes of sha256(salt + ":" + id), big-endian, modulo 10000."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BASIS_POINTS


def coverage_bucket(salt, user_id):
    """`bucket(salt + ":coverage", id)`: decides coverage independently of the variant."""
    return bucket(salt + ":coverage", user_id)


def fnv32a(s):
    """32-bit FNV-1a over the UTF-16 code units of `s` (as JavaScript's charCodeAt)."""
    h = FNV_OFFSET
    units = s.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(units), 2):
        h = ((h ^ (units[i] | units[i + 1] << 8)) * FNV_PRIME) & 0xFFFFFFFF
    return h


def gb_v2(seed, user_id):
    """GrowthBook's version 2 hash, a number in [0, 1) with 4 decimals."""
    return fnv32a(str(fnv32a(seed + user_id))) % 10000 / 10000


def gb_v1(seed, user_id):
    """GrowthBook's version 1 hash (id before seed, 3 decimals); not used by the api."""
    return fnv32a(user_id + seed) % 1000 / 1000


def basis_points(percent):
    """round(percent x 100), halves up (no tie arises with at most two decimals)."""
    x = percent * 100
    whole = math.floor(x)
    return whole + 1 if x - whole >= 0.5 else whole


def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _days_in_month(y, m):
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]


def instant(value):
    """Nanoseconds since 1970-01-01T00:00:00Z of an RFC 3339 string or an aware datetime
    (fractions beyond nanoseconds are dropped): exact, so comparisons never round."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a datetime needs a time zone")
        return (value - EPOCH) // timedelta(microseconds=1) * 1000
    m = RFC3339.fullmatch(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    oh, om = int(m.group(9) or 0), int(m.group(10) or 0)
    if not (1 <= mo <= 12 and 1 <= d <= _days_in_month(y, mo) and h <= 23 and mi <= 59
            and s <= 60 and oh <= 23 and om <= 59):
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    offset = (oh * 3600 + om * 60) * (-1 if m.group(8) == "-" else 1)
    seconds = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
    return seconds * 10**9 + int((m.group(7) or "").ljust(9, "0")[:9])


def find_experiment(config, experiment_id):
    """The experiment of `config` with that id, or None."""
    return next((e for e in config.get("experiments") or [] if e.get("id") == experiment_id), None)


def evaluate(config, experiment_id, user_id, attributes=None, now=None):
    """The variant of `user_id` in experiment `experiment_id` of `config` (the document of
    GET /sdk/config): {"variant": name or None, "reason": ...}, by the rules of the
    specification, in order. `now`: RFC 3339 string or aware datetime (default: the current
    time). Raises KeyError when the experiment is not in the configuration."""
    experiment = find_experiment(config, experiment_id)
    if experiment is None:
        raise KeyError(f"experiment {experiment_id!r} is not in the configuration")
    at = instant(datetime.now(timezone.utc) if now is None else now)
    return _evaluate(config, experiment, user_id, attributes or {}, at, as_holdout=False)


def _answer(variant, reason):
    return {"variant": variant, "reason": reason}


def _evaluate(config, experiment, user_id, attributes, at, as_holdout):
    forced, status = experiment.get("forced") or {}, experiment.get("status")
    if user_id in forced and status != "stopped":
        return _answer(forced[user_id], "forced")
    if status != "running":
        return _answer(None, "not_running")
    start, stop = experiment.get("start_at"), experiment.get("stop_at")
    if start is not None and at < instant(start):
        return _answer(None, "not_started")
    if stop is not None and at >= instant(stop):
        return _answer(None, "ended")
    if not (as_holdout or experiment.get("holdout")) and _held_out(config, experiment, user_id, attributes, at):
        return _answer(None, "holdout")
    if not _in_layer(config, experiment.get("layer"), user_id):
        return _answer(None, "not_in_layer")
    conditions = experiment.get("conditions")
    if conditions is not None and not matches(conditions, attributes):
        return _answer(None, "not_targeted")
    variant = _pick(experiment, user_id)
    return _answer(variant, "assigned" if variant is not None else "not_in_traffic")


def _held_out(config, experiment, user_id, attributes, at):
    """Rule 4: some holdout that applies to `experiment` puts the user in its `holdout` variant.
    A holdout whose experiment is not in the configuration holds nobody out."""
    layer_key = (experiment.get("layer") or {}).get("key")
    for holdout in config.get("holdouts") or []:
        scope = holdout.get("layer")
        if scope is not None and scope != layer_key:
            continue
        h = find_experiment(config, holdout.get("experiment_id"))
        if h is not None and _evaluate(config, h, user_id, attributes, at, as_holdout=True)["variant"] == "holdout":
            return True
    return False


def _in_layer(config, layer, user_id):
    """Rule 5; a layer key missing from `layers` admits nobody."""
    if layer is None:
        return True
    salt = next((l.get("salt") for l in config.get("layers") or [] if l.get("key") == layer.get("key")), None)
    if salt is None:
        return False
    start, end = layer["range"]
    return start <= bucket(salt, user_id) < end


def _pick(experiment, user_id):
    """Rule 7: the variant's name, or None when the user is not in the traffic."""
    kind = experiment.get("hash") or "sha256"
    variants, coverage = experiment["variants"], experiment.get("coverage_percent")
    coverage = 100 if coverage is None else coverage
    if kind == "sha256":
        salt = experiment["salt"]
        if coverage_bucket(salt, user_id) >= basis_points(coverage):
            return None
        b, upper = bucket(salt, user_id), 0
        for v in variants:
            upper += basis_points(v["allocation_percent"])
            if b < upper:
                return v["name"]
        return None
    if kind == "growthbook_v2":
        seed = experiment.get("seed")
        n, c, s = gb_v2(experiment["salt"] if seed is None else seed, user_id), coverage / 100, 0.0
        for v in variants:
            w = v["allocation_percent"] / 100
            if s <= n < s + c * w:
                return v["name"]
            s += w
        return None
    raise ValueError(f"unknown hash {kind!r}")


class Client:
    """Keeps the configuration of GET /sdk/config (API key as `Authorization: Bearer`) and
    evaluates locally. `refresh()` downloads it again, sending the last ETag as
    If-None-Match, so an unchanged configuration costs a 304 and no body. No threads: call
    `refresh()` when you want a newer configuration."""

    def __init__(self, base_url, api_key, timeout=10.0):
        self.url = base_url.rstrip("/") + "/sdk/config"
        self.api_key, self.timeout = api_key, timeout
        self.config, self.etag = None, None

    def refresh(self):
        """Downloads the configuration; True when a new one was taken, False on 304."""
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        if self.config is not None and self.etag:
            headers["If-None-Match"] = self.etag
        request = urllib.request.Request(self.url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body, etag = response.read(), response.headers.get("ETag")
        except urllib.error.HTTPError as e:
            if e.code == 304 and self.config is not None:
                return False
            raise
        config = json.loads(body)
        if config.get("version") != 1:
            raise ValueError(f"configuration version {config.get('version')!r}, this client knows 1")
        self.config, self.etag = config, etag
        return True

    def evaluate(self, experiment_id, user_id, attributes=None, now=None):
        """`evaluate` on the configuration held, downloaded first if there is none yet."""
        if self.config is None:
            self.refresh()
        return evaluate(self.config, experiment_id, user_id, attributes, now)
