out = {}
for metric in ["conversion"] + (["value"] if INPUT["value"] else []):
    control = INPUT["variants"][0]
    tested = [r for r in (compare(control, v, metric) for v in INPUT["variants"][1:]) if r]
    correct(tested, INPUT["correction"])
    result = []
    for r in tested:
        fixed = intervals(r["est"], half_fixed(r["est"], r["var"], r["dof"], r["p_fixed"]), r["rel"], r["mc"])
        seq = intervals(r["est"], half_seq(r["est"], r["var"], r["n"], r["p_seq"]), r["rel"], r["mc"])
        result.append(dict(
            variant=r["variant"], p_value=r["p_fixed"], adjusted_p_value=r["adj_p_fixed"],
            relative_ci=fixed[0], absolute_ci=fixed[1],
            sequential=dict(p_value=r["p_seq"], adjusted_p_value=r["adj_p_seq"], relative_ci=seq[0], absolute_ci=seq[1]),
            decision=decide(r)))
    out[metric] = result
print(json.dumps(out, indent=1))
