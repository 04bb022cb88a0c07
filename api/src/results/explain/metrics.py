# Every metric of the experiment: the decision's family is the primary and the secondaries
# x treatments, corrected together; each guardrail is corrected across its treatments and
# judged against its margin (higher is better: fails below -margin; lower: above +margin).
def guardrail(m, decision):
    ci = decision["relative_ci"]
    if ci is None:
        return "inconclusive"
    margin, lo, hi = m["margin"], ci[0], ci[1]
    fail, ok = (hi < -margin, lo > -margin) if m["direction"] == "higher" else (lo > margin, hi < margin)
    return "fail" if fail else "pass" if ok else "inconclusive"


rows = {}
for m in INPUT["metrics"]:
    control = m["variants"][0]
    rows[m["key"]] = [r for r in (compare(control, v, m["kind"]) for v in m["variants"][1:]) if r]
correct([r for m in INPUT["metrics"] if m["role"] != "guardrail" for r in rows[m["key"]]], INPUT["correction"])
for m in INPUT["metrics"]:
    if m["role"] == "guardrail":
        correct(rows[m["key"]], INPUT["correction"])
out = {}
for m in INPUT["metrics"]:
    out[m["key"]] = []
    for r in rows[m["key"]]:
        decision = decide(r)
        if m["role"] == "guardrail":
            decision["guardrail"] = guardrail(m, decision)
        out[m["key"]].append(dict(variant=r["variant"], decision=decision))
print(json.dumps(out, indent=1))
