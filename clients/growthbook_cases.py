#!/usr/bin/env python3
"""GrowthBook's hash test cases, fetched at test time (nothing of GrowthBook is committed).

The crates.io crate growthbook-rust 0.4.0 ships an unedited copy of GrowthBook's SDK test
cases (tests/cases/cases.json). This script downloads the crate from static.crates.io,
checks the sha256 of the crate and of cases.json against the values pinned below, keeps
cases.json in clients/.cache/ (git-ignored; reused while its checksum holds) and prints the
`hash` cases as JSON: a list of [seed, id, version, expected].

    python3 clients/growthbook_cases.py            # prints the cases, exit 1 on any failure

The Python and JavaScript tests check every version 2 case against gb_v2 and every version 1
case against gb_v1; when the download fails they fail (never skip).
"""
import hashlib
import http.client
import io
import json
import os
import sys
import tarfile
import urllib.request

CRATE, VERSION = "growthbook-rust", "0.4.0"
URL = f"https://static.crates.io/crates/{CRATE}/{CRATE}-{VERSION}.crate"
CRATE_SHA256 = "508c5029c74a2f08edd38f2082c4cd862bc664aa8e3e9ae3929d4bf811756a59"
CASES_SHA256 = "01811b2c39ab6f80426376342fa8338f5447d6d1a9d14095dbc06fc3cc882bf3"
MEMBER = f"{CRATE}-{VERSION}/tests/cases/cases.json"
CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
CACHED = os.path.join(CACHE, f"{CRATE}-{VERSION}-cases.json")


class CasesUnavailable(Exception):
    """The cases could not be downloaded or did not match their pinned checksum."""


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _cached():
    """The cached cases.json when it is there and intact, else None."""
    try:
        with open(CACHED, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data if _sha256(data) == CASES_SHA256 else None


def _download(timeout):
    """cases.json out of the crate, both checksums verified."""
    try:
        with urllib.request.urlopen(URL, timeout=timeout) as response:
            crate = response.read()
    except (OSError, http.client.HTTPException) as e:
        raise CasesUnavailable(f"could not download {URL}: {e}") from e
    if _sha256(crate) != CRATE_SHA256:
        raise CasesUnavailable(f"{URL}: sha256 {_sha256(crate)}, expected {CRATE_SHA256}")
    with tarfile.open(fileobj=io.BytesIO(crate), mode="r:gz") as archive:
        data = archive.extractfile(MEMBER).read()
    if _sha256(data) != CASES_SHA256:
        raise CasesUnavailable(f"{MEMBER}: sha256 {_sha256(data)}, expected {CASES_SHA256}")
    return data


def cases_json(timeout=60):
    """The bytes of cases.json, from the cache or downloaded (then cached)."""
    data = _cached()
    if data is None:
        data = _download(timeout)
        os.makedirs(CACHE, exist_ok=True)
        temporary = f"{CACHED}.{os.getpid()}.tmp"
        with open(temporary, "wb") as f:
            f.write(data)
        os.replace(temporary, CACHED)
    return data


def hash_cases(timeout=60):
    """GrowthBook's `hash` cases: a list of [seed, id, version, expected]."""
    cases = json.loads(cases_json(timeout))["hash"]
    if not cases:
        raise CasesUnavailable("cases.json has no hash cases")
    return cases


def main():
    try:
        cases = hash_cases()
    except CasesUnavailable as e:
        print(f"growthbook_cases: {e}", file=sys.stderr)
        return 1
    json.dump(cases, sys.stdout)  # ASCII with \u escapes: safe through any pipe
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
