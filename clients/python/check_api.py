"""The Python client against a running api, as a user would run it (standard library only,
urllib): local evaluation of GET /sdk/config must give every user the variant and reason
the api gives, an unchanged configuration costs a 304, and exposures reported through
POST /exposures are accepted; the metric catalog takes metrics, experiments decided on them,
and answers bad input with a JSON 400 naming the field. `scripts/test` runs it against the
local stack:

    python3 clients/python/check_api.py [http://127.0.0.1:9000] [api key]
"""

import json
import sys
import urllib.error
import urllib.request
import uuid

from abtest_eval import Client


def call(base, key, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read() or b"null")


def main():
    base = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9000").rstrip("/")
    key = sys.argv[2] if len(sys.argv) > 2 else "my_secret_api_key_123"
    layer = f"py-{uuid.uuid4().hex[:12]}"
    variants = [{"name": "control", "allocation_percent": 50}, {"name": "treatment", "allocation_percent": 50}]
    assert call(base, key, "POST", "/layers", {"key": layer})[0] == 201
    _, holdout = call(base, key, "POST", "/holdouts", {"name": "py holdout", "percent": 10, "layer": layer})
    experiments = [
        {"name": "py targeted", "variants": variants, "coverage_percent": 50,
         "conditions": {"country": {"$in": ["DE", "FR"]}, "app": {"$vgte": "2.0.0"}},
         "layer": {"key": layer, "percent": 60}},
        {"name": "py growthbook", "variants": variants, "hash": "growthbook_v2", "seed": "py-seed",
         "layer": {"key": layer, "percent": 40}, "forced": {"qa-py": "treatment"}},
    ]
    ids = []
    for body in experiments:
        status, created = call(base, key, "POST", "/experiments", body)
        assert status == 201, created
        ids.append(created["id"])

    client = Client(base, key)
    assert client.refresh() is True, "the first download takes the configuration"
    assert client.refresh() is False, "an unchanged configuration is a 304"

    agree = 0
    users = [f"py-user-{i}" for i in range(150)] + ["qa-py"]
    for i, user in enumerate(users):
        attributes = {"country": ["DE", "FR", "US"][i % 3], "app": ["1.9.9", "2.0.0", "2.10.1"][i % 3]}
        for experiment_id in ids + [holdout["id"]]:
            local = client.evaluate(experiment_id, user, attributes)
            status, remote = call(base, key, "POST", f"/experiments/{experiment_id}/assignment/{user}",
                                  {"attributes": attributes})
            assert status == 200, remote
            if (remote["variant"], remote["reason"]) != (local["variant"], local["reason"]):
                sys.exit(f"{user} in {experiment_id}: api {remote['variant']!r} ({remote['reason']}), "
                         f"local {local['variant']!r} ({local['reason']})")
            agree += 1

    exposure = {"exposure_id": uuid.uuid4().hex, "experiment_id": ids[0], "variant": "control",
                "user_id": "py-local-user", "attributes": {"country": "DE"}}
    status, accepted = call(base, key, "POST", "/exposures", {"exposures": [exposure]})
    assert status == 202 and accepted == {"accepted": 1}, accepted
    metrics = check_metrics(base, key)
    print(f"python client against {base}: {agree} decisions agree with the api, 304 when unchanged, "
          f"POST /exposures accepted, {metrics} catalog metrics answered")


def check_metrics(base, key):
    """The catalog through urllib: metrics defined, an experiment decided on them, every
    metric in one results answer, a misspelt option refused by name."""
    tag = uuid.uuid4().hex[:10]
    defs = [
        {"key": f"py-buy-{tag}", "name": "Purchases", "kind": "conversion", "event_type": "purchase"},
        {"key": f"py-rev-{tag}", "name": "Revenue", "kind": "mean", "event_type": "purchase",
         "value_property": "order_value", "capping": {"percentile": 0.99},
         "filters": [{"property": "country", "value": "DE"}, {"property": "/app/build", "value": 7}]},
        {"key": f"py-ref-{tag}", "name": "Refunds", "kind": "conversion", "event_type": "refund",
         "direction": "lower", "window_hours": 48},
    ]
    for body in defs:
        status, created = call(base, key, "POST", "/metrics", body)
        assert status == 201 and created["key"] == body["key"], created
    try:
        call(base, key, "POST", "/metrics", dict(defs[0], key=f"py-typo-{tag}", windw_hours=3))
        sys.exit("a misspelt option was accepted")
    except urllib.error.HTTPError as e:
        error = json.loads(e.read())
        assert e.code == 400 and "windw_hours" in error["message"], error
    variants = [{"name": "control", "allocation_percent": 50}, {"name": "treatment", "allocation_percent": 50}]
    wanted = {"primary": defs[0]["key"], "secondary": [defs[1]["key"]],
              "guardrails": [{"metric": defs[2]["key"], "margin": 0.02}]}
    status, experiment = call(base, key, "POST", "/experiments",
                              {"name": "py metrics", "variants": variants, "metrics": wanted})
    assert status == 201 and experiment["metrics"] == wanted, experiment
    status, results = call(base, key, "GET", f"/experiments/{experiment['id']}/results")
    assert status == 200, results
    roles = [(m["key"], m["role"]) for m in results["metrics"]]
    assert roles == [(defs[0]["key"], "primary"), (defs[1]["key"], "secondary"), (defs[2]["key"], "guardrail")], roles
    return len(roles)


if __name__ == "__main__":
    main()
