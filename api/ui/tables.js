// How the results page writes numbers and builds its tables, shared by app.js (loaded
// first, both `defer`): the results table and the breakdown are the same columns, so a
// slice reads exactly like the whole experiment.
"use strict";

window.abtestTables = (function () {
  // Numbers for people, in one fixed locale so that what the page shows is reproducible.
  const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const percent2 = new Intl.NumberFormat("en-US", { style: "percent", minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const percent1 = new Intl.NumberFormat("en-US", { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const signed1 = new Intl.NumberFormat("en-US", {
    style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1, signDisplay: "exceptZero",
  });
  const decimal2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const decimal3 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 3, maximumFractionDigits: 3 });
  const DASH = "—";
  const fmt = {
    int: (n) => (n == null ? DASH : integer.format(n)),
    rate: (x) => (x == null ? DASH : percent2.format(x)),
    lift: (x) => (x == null ? DASH : signed1.format(x)),
    range: (ci, f) => (ci == null || ci[0] == null || ci[1] == null ? DASH : `${f(ci[0])} to ${f(ci[1])}`),
    p: (p) => (p == null ? DASH : p < 0.001 ? "< 0.001" : decimal3.format(p)),
    chance: (x) => (x == null ? DASH : percent1.format(x)),
    money: (x) => (x == null ? DASH : decimal2.format(x)),
    // A metric's per-user number: a share for a conversion metric, else a plain number.
    metric: (kind, x) => (kind === "conversion" ? fmt.rate(x) : fmt.money(x)),
    // The decision's interval: relative, or in the metric's units without a positive control mean.
    decisionRange: (d) => (d == null ? DASH : d.scale === "relative" ? fmt.range(d.relative_ci, fmt.lift) : fmt.range(d.absolute_ci, fmt.money)),
    date: (s) => (s ? s.slice(0, 10) : DASH),
  };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return node;
  }

  const level = (r) => `${Math.round((1 - r.alpha) * 100)}%`;
  const testName = (r) => (r.significance === "fixed_horizon" ? "fixed-horizon" : "always-valid");

  // The columns of a results answer `r` for `variants` (its own, or a breakdown's slices):
  // [data-field, title, cell of a variant, class]. Every number of a metric's columns
  // comes from its decision: one test, one scale.
  function resultColumns(r, variants) {
    const metricColumns = (prefix, metric) => {
      const d = (v) => { const c = v.comparison && v.comparison[metric]; return c ? c.decision : undefined; };
      const cell = (f) => (v) => (v.comparison && v.comparison[metric] ? f(v.comparison[metric], d(v)) : DASH);
      return [
        [`${prefix}lift`, "Lift", cell((c) => fmt.lift(c.relative_lift)), "num"],
        [`${prefix}ci`, `${level(r)} interval (${testName(r)})`, cell((c, d) => fmt.decisionRange(d)), "num"],
        [`${prefix}p`, "p-value", cell((c, d) => fmt.p(d && d.p_value)), "num"],
        [`${prefix}adjusted-p`, `Adjusted p (${r.correction})`, cell((c, d) => fmt.p(d && d.adjusted_p_value)), "num"],
        [`${prefix}significant`, "Significant", cell((c) => (c.significant ? "Yes" : "No"))],
      ];
    };
    const columns = [
      ["variant", "Variant", (v) => (v.name === r.control && v.name !== "control" ? `${v.name} (control)` : v.name)],
      ["users", "Users", (v) => fmt.int(v.users), "num"],
      ["conversions", "Conversions", (v) => fmt.int(v.converted_users), "num"],
      ["rate", "Conversion rate", (v) => fmt.rate(v.conversion_rate), "num"],
      ...metricColumns("", "conversion"),
    ];
    if (variants.some((v) => v.comparison && v.comparison.conversion && v.comparison.conversion.bayesian)) {
      columns.push(["chance", "Chance to beat control", (v) => { const c = v.comparison && v.comparison.conversion; return c && c.bayesian ? fmt.chance(c.bayesian.chance_to_beat_control) : DASH; }, "num"]);
    }
    if (r.value_property != null) {
      columns.push(["value-mean", `Mean ${r.value_property}`, (v) => (v.value ? fmt.money(v.value.mean) : DASH), "num"]);
      columns.push(...metricColumns("value-", "value").map(([f, title, g, cls]) => [f, `${r.value_property}: ${title.toLowerCase()}`, g, cls]));
    }
    return columns;
  }

  // One variant's row; a significant conversion lift is marked a win or a loss.
  function variantRow(columns, v, attrs, ...first) {
    const c = v.comparison && v.comparison.conversion;
    const up = c && (c.relative_lift != null ? c.relative_lift > 0 : c.absolute_lift > 0);
    return el("tr", Object.assign({ "data-variant": v.name, class: c && c.significant ? (up ? "win" : "loss") : "" }, attrs),
      ...first, ...columns.map(([field, , f, cls]) => el("td", { class: cls || "", "data-field": field }, f(v))));
  }

  // The columns of a metrics answer `r`: [data-field, title, cell of (metric, variant),
  // class]; every number of a row from that metric's decision.
  function metricColumns(r) {
    const c = (v) => v.comparison;
    return [
      ["metric", "Metric", (m) => el("span", {}, m.name, el("span", { class: "role" }, m.role))],
      ["variant", "Variant", (m, v) => v.name],
      ["control-mean", `${r.control}`, (m) => fmt.metric(m.kind, m.variants[0].mean), "num"],
      ["mean", "Treatment", (m, v) => fmt.metric(m.kind, v.mean), "num"],
      ["lift", "Lift", (m, v) => fmt.lift(c(v) && c(v).relative_lift), "num"],
      ["ci", `${level(r)} interval`, (m, v) => fmt.decisionRange(c(v) && c(v).decision), "num"],
      ["adjusted-p", `Adjusted p (${r.correction})`, (m, v) => fmt.p(c(v) && c(v).decision && c(v).decision.adjusted_p_value), "num"],
      ["significant", "Significant", (m, v) => (c(v) ? (c(v).significant ? "Yes" : "No") : DASH)],
      ["guardrail", "Guardrail", (m, v) => (v.guardrail ? `${v.guardrail} (margin ${fmt.lift(m.margin)})` : DASH)],
    ];
  }

  // In the order of a ship decision (issue #13): the primary, then the guardrails that may
  // veto it, then the secondaries; the API lists them primary, secondaries, guardrails.
  const ROLE_ORDER = { primary: 0, guardrail: 1, secondary: 2 };

  // A row per metric (in ROLE_ORDER, a stable sort) and treatment; a significant lift in
  // the metric's good direction is a win, in the other a loss. `first()`: leading cells.
  function metricRows(columns, metrics, attrs, first) {
    const ordered = metrics.slice().sort((a, b) => ROLE_ORDER[a.role] - ROLE_ORDER[b.role]);
    return ordered.flatMap((m) => m.variants.slice(1).map((v) => {
      const c = v.comparison;
      const good = c && c.relative_lift != null && (m.direction === "lower" ? c.relative_lift < 0 : c.relative_lift > 0);
      const row = Object.assign({ "data-metric": m.key, "data-role": m.role, "data-variant": v.name, class: c && c.significant ? (good ? "win" : "loss") : "" }, attrs);
      return el("tr", row, ...(first ? [first()] : []), ...columns.map(([field, , f, cls]) => {
        const cell = { class: cls || "", "data-field": field };
        if (field === "guardrail" && v.guardrail) cell["data-guardrail"] = v.guardrail;
        return el("td", cell, f(m, v));
      }));
    }));
  }

  function head(table, columns) {
    table.tHead.replaceChildren(el("tr", {}, ...columns.map(([field, title, , cls]) => el("th", { class: cls || "", "data-field": field }, title))));
  }

  return { fmt, DASH, el, level, testName, resultColumns, variantRow, metricColumns, metricRows, head };
})();
