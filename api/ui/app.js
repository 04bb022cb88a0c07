// The results page: plain browser JavaScript, no build step. It only calls the JSON API
// (same origin) with the key from sessionStorage in an Authorization header.
"use strict";

(function () {
  const KEY = "abtest.api_key";
  const $ = (id) => document.getElementById(id);
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

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

  const state = { experiment: null, after: null, charts: {} };

  function key() {
    return sessionStorage.getItem(KEY);
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${key()}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await response.json().catch(() => ({ message: `${response.status} ${response.statusText}` }));
    if (response.status === 401) {
      sessionStorage.removeItem(KEY);
      showKeyForm();
    }
    if (!response.ok) throw new Error(data.message || `${response.status}`);
    return data;
  }

  function showError(e) {
    const box = $("error");
    box.textContent = e ? String(e.message || e) : "";
    box.hidden = !e;
  }

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

  function showKeyForm() {
    $("key-form").hidden = false;
    $("experiments").hidden = true;
    $("experiment").hidden = true;
    $("forget-key").hidden = true;
    $("key").focus();
  }

  // --- experiments list --------------------------------------------------------------

  async function loadList(append) {
    const query = new URLSearchParams({ limit: "50" });
    if (append && state.after != null) query.set("after", state.after);
    const page = await api("GET", `/experiments?${query}`);
    const body = $("experiment-list").tBodies[0];
    if (!append) body.replaceChildren();
    for (const e of page.experiments) {
      const link = el("a", { href: `#/experiments/${e.id}`, "data-experiment-id": e.id }, e.name);
      body.append(
        el("tr", { "data-experiment-id": e.id },
          el("td", { "data-field": "name" }, link),
          el("td", { "data-field": "status" }, el("span", { class: `status ${e.status}` }, e.status)),
          el("td", { "data-field": "variants" }, e.variants.map((v) => `${v.name} (${v.allocation_percent}%)`).join(", ")),
          el("td", { "data-field": "created" }, fmt.date(e.created_at)),
          el("td", { "data-field": "users", class: "num" }, fmt.int(e.exposed_users))));
    }
    state.after = page.next_after;
    $("more").hidden = page.next_after == null;
    $("experiments").hidden = false;
  }

  // --- one experiment ----------------------------------------------------------------

  function showExperiment(e) {
    state.experiment = e;
    $("experiment-name").textContent = e.name;
    const status = $("experiment-status");
    status.textContent = e.status;
    status.className = `status ${e.status}`;
    $("experiment-description").textContent = e.description || "";
    $("rollout").replaceChildren(...rolloutRows(e).flatMap(([term, value]) => [
      el("dt", {}, term),
      el("dd", { "data-rollout": term }, value),
    ]));
    const phases = e.phases || [];
    $("phase").replaceChildren(...phases.slice().reverse().map((p, i) => el("option", { value: i === 0 ? "" : String(p.phase) },
      `${i === 0 ? "Current: " : ""}phase ${p.phase} (${fmt.date(p.started_at)} → ${p.ended_at ? fmt.date(p.ended_at) : "now"})`)));
    $("pause").disabled = e.status !== "running";
    $("resume").disabled = e.status !== "paused";
    $("stop").disabled = e.status === "stopped";
  }

  // Who the experiment assigns (docs/assignment.md): one row per setting that is not the default.
  function rolloutRows(e) {
    const rows = [["Traffic", `${e.coverage_percent} % of users`]];
    if (e.conditions) rows.push(["Targeting", el("code", {}, JSON.stringify(e.conditions))]);
    if (e.start_at || e.stop_at) rows.push(["Schedule", `${e.start_at || "now"} → ${e.stop_at || "no end"}`]);
    if (e.layer) rows.push(["Layer", `${e.layer.key}: buckets ${e.layer.range[0]}–${e.layer.range[1]} of 10000`]);
    if (e.holdout) rows.push(["Holdout", `holds its users out of ${e.holdout_layer ? `layer ${e.holdout_layer}` : "every experiment"}`]);
    const forced = Object.entries(e.forced || {});
    if (forced.length) rows.push(["Forced users", `${forced.length} (left out of the results): ${forced.slice(0, 5).map(([u, v]) => `${u} → ${v}`).join(", ")}${forced.length > 5 ? ", …" : ""}`]);
    if (e.hash && e.hash !== "sha256") rows.push(["Hash", `${e.hash} (seed ${e.seed})`]);
    return rows;
  }

  // Suggestions for the event type: the types received lately (typing any other works too).
  async function loadEventTypes() {
    try {
      const t = await api("GET", "/event_types?last_day=30");
      $("event-types").replaceChildren(...t.event_types.map((x) => el("option", { value: x.type })));
    } catch (e) {
      // Only suggestions: the page works without them.
    }
  }

  async function openExperiment(id) {
    showError(null);
    loadEventTypes();
    const e = await api("GET", `/experiments/${id}`);
    showExperiment(e);
    $("experiments").hidden = true;
    $("experiment").hidden = false;
    $("results").hidden = true;
    document.body.dataset.state = "experiment";
    document.body.dataset.results = "";
  }

  async function setStatus(status) {
    if (status === "stopped" && !window.confirm(`Stop "${state.experiment.name}" for good? Nobody new will be assigned.`)) return;
    showError(null);
    const e = await api("PATCH", `/experiments/${state.experiment.id}`, { status });
    showExperiment(e);
  }

  function queryString() {
    const q = new URLSearchParams({ event_type: $("event-type").value.trim() });
    if ($("last-day").value) q.set("last_day", $("last-day").value);
    if ($("phase").value) q.set("phase", $("phase").value);
    const attribute = $("attribute").value.trim();
    if (attribute) {
      q.set("attribute", attribute);
      q.set("attribute_value", $("attribute-value").value);
    }
    return q;
  }

  async function showResults() {
    showError(null);
    document.body.dataset.results = "loading";
    const id = state.experiment.id;
    const q = queryString();
    const series = new URLSearchParams(q);
    const value = $("value-property").value.trim();
    if (value) q.set("value_property", value);
    const m = state.experiment.metrics || {};
    const hasMetrics = Boolean(m.primary || (m.secondary || []).length || (m.guardrails || []).length);
    const decided = new URLSearchParams(series);
    decided.delete("event_type");
    const [results, timeseries, metrics] = await Promise.all([
      api("GET", `/experiments/${id}/results?${q}`),
      api("GET", `/experiments/${id}/timeseries?${series}`),
      hasMetrics ? api("GET", `/experiments/${id}/results?${decided}`) : null,
    ]);
    renderResults(results);
    renderTimeseries(timeseries);
    renderMetrics(metrics);
    $("results").hidden = false;
    document.body.dataset.results = "ready";
  }

  function renderResults(r) {
    const srm = $("srm-warning");
    const srmP = fmt.p(r.srm.p_value);
    srm.hidden = !r.srm.mismatch;
    srm.textContent = r.srm.mismatch
      ? `Sample ratio mismatch: users per variant do not match the allocations (p ${srmP.startsWith("<") ? srmP : `= ${srmP}`}). ` +
        "Check assignment and exposure logging before trusting any number below."
      : "";
    const others = r.warnings.filter((w) => w.code !== "sample_ratio_mismatch");
    $("warnings").replaceChildren(...others.map((w) => el("li", { "data-code": w.code }, w.message)));
    $("warnings").hidden = others.length === 0;
    const from = r.window.from.slice(0, 16).replace("T", " ");
    const to = r.window.to.slice(0, 16).replace("T", " ");
    const segment = r.segment ? ` · users with ${r.segment.attribute} = ${r.segment.value}` : "";
    $("results-meta").textContent = `· ${r.event_type} · ${from} to ${to} UTC${segment}`;

    const comparisons = r.variants.map((v) => v.comparison && v.comparison.conversion).filter(Boolean);
    const hasBayes = comparisons.some((c) => c.bayesian);
    const hasValue = r.value_property != null;
    const level = `${Math.round((1 - r.alpha) * 100)}%`;
    const testName = r.significance === "fixed_horizon" ? "fixed-horizon" : "always-valid";
    // Every number of a metric's columns comes from its decision: one test, one scale.
    const metricColumns = (prefix, metric) => {
      const d = (v) => { const c = v.comparison && v.comparison[metric]; return c ? c.decision : undefined; };
      const cell = (f) => (v) => (v.comparison && v.comparison[metric] ? f(v.comparison[metric], d(v)) : DASH);
      return [
        [`${prefix}lift`, "Lift", cell((c) => fmt.lift(c.relative_lift)), "num"],
        [`${prefix}ci`, `${level} interval (${testName})`, cell((c, d) => fmt.decisionRange(d)), "num"],
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
    if (hasBayes) {
      columns.push(["chance", "Chance to beat control", (v) => { const c = v.comparison && v.comparison.conversion; return c && c.bayesian ? fmt.chance(c.bayesian.chance_to_beat_control) : DASH; }, "num"]);
    }
    if (hasValue) {
      columns.push(["value-mean", `Mean ${r.value_property}`, (v) => (v.value ? fmt.money(v.value.mean) : DASH), "num"]);
      columns.push(...metricColumns("value-", "value").map(([f, title, g, cls]) => [f, `${r.value_property}: ${title.toLowerCase()}`, g, cls]));
    }
    const table = $("results-table");
    table.tHead.replaceChildren(el("tr", {}, ...columns.map(([field, title, , cls]) => el("th", { class: cls || "", "data-field": field }, title))));
    table.tBodies[0].replaceChildren(...r.variants.map((v) => {
      const c = v.comparison && v.comparison.conversion;
      const up = c && (c.relative_lift != null ? c.relative_lift > 0 : c.absolute_lift > 0);
      const row = el("tr", { "data-variant": v.name, class: c && c.significant ? (up ? "win" : "loss") : "" },
        ...columns.map(([field, , f, cls]) => el("td", { class: cls || "", "data-field": field }, f(v))));
      return row;
    }));
    $("results-note").textContent =
      `Lift is relative to ${r.control}. Each metric is decided by one test, the experiment's ` +
      `${testName} test on the relative lift: its p-value, adjusted (${r.correction}), below ${r.alpha} is ` +
      `"Significant", and its ${level} interval is widened to the adjusted level, so the interval excludes 0 ` +
      `exactly when the row says Yes. A control mean of 0 or below has no relative lift: the interval is then ` +
      `the difference in the metric's units.` +
      (r.significance === "fixed_horizon" ? "" : " Always-valid intervals stay correct however often you look.");
    drawLift("lift-chart", r, "conversion", `Relative lift of ${r.event_type} conversion vs ${r.control} (%)`);
    $("value-lift-card").hidden = !hasValue;
    if (hasValue) drawLift("value-lift-chart", r, "value", `Relative lift of mean ${r.value_property} vs ${r.control} (%)`);
  }

  // Every catalog metric of the experiment: one row per metric and treatment, each number
  // from that metric's decision (corrected across the decision's metrics).
  function renderMetrics(r) {
    $("metrics-card").hidden = !r;
    if (!r) return;
    const level = `${Math.round((1 - r.alpha) * 100)}%`;
    const columns = [
      ["metric", "Metric", (m) => el("span", {}, m.name, el("span", { class: "role" }, m.role))],
      ["variant", "Variant", (m, v) => v.name],
      ["control-mean", `${r.control}`, (m) => fmt.metric(m.kind, m.variants[0].mean), "num"],
      ["mean", "Treatment", (m, v) => fmt.metric(m.kind, v.mean), "num"],
      ["lift", "Lift", (m, v) => fmt.lift(v.comparison && v.comparison.relative_lift), "num"],
      ["ci", `${level} interval`, (m, v) => fmt.decisionRange(v.comparison && v.comparison.decision), "num"],
      ["adjusted-p", `Adjusted p (${r.correction})`, (m, v) => fmt.p(v.comparison && v.comparison.decision && v.comparison.decision.adjusted_p_value), "num"],
      ["significant", "Significant", (m, v) => (v.comparison ? (v.comparison.significant ? "Yes" : "No") : DASH)],
      ["guardrail", "Guardrail", (m, v) => (v.guardrail ? `${v.guardrail} (margin ${fmt.lift(m.margin)})` : DASH)],
    ];
    const table = $("metrics-table");
    table.tHead.replaceChildren(el("tr", {}, ...columns.map(([field, title, , cls]) => el("th", { class: cls || "", "data-field": field }, title))));
    table.tBodies[0].replaceChildren(...r.metrics.flatMap((m) => m.variants.slice(1).map((v) => {
      const good = v.comparison && v.comparison.relative_lift != null && (m.direction === "lower" ? v.comparison.relative_lift < 0 : v.comparison.relative_lift > 0);
      return el("tr", { "data-metric": m.key, "data-variant": v.name, class: v.comparison && v.comparison.significant ? (good ? "win" : "loss") : "" },
        ...columns.map(([field, , f, cls]) => {
          const attrs = { class: cls || "", "data-field": field };
          if (field === "guardrail" && v.guardrail) attrs["data-guardrail"] = v.guardrail;
          return el("td", attrs, f(m, v));
        }));
    })));
    $("metrics-note").textContent =
      `Phase ${r.phase.phase}. Each metric is decided by the experiment's test; the correction (${r.correction}) spans every ` +
      "primary and secondary metric of every treatment, guardrails are corrected on their own and pass when the interval " +
      "rules out a worsening beyond their margin.";
  }

  function chart(id, config) {
    if (state.charts[id]) state.charts[id].destroy();
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
    state.charts[id] = new Chart($(id), config);
    $(id).dataset.ready = "true";
  }

  // A forest plot of one metric: per treatment the decision's interval (relative, at the
  // adjusted level) as a floating bar and the lift as a point.
  function drawLift(id, r, metric, title) {
    const treatments = r.variants.filter((v) => v.comparison && v.comparison[metric]);
    const pct = (x) => (x == null ? null : x * 100);
    const bar = (ci) => (ci == null || ci[0] == null || ci[1] == null ? null : ci.map(pct));
    const decision = (v) => v.comparison[metric].decision;
    const datasets = [
      {
        type: "bar", label: `${Math.round((1 - r.alpha) * 100)}% interval (adjusted, ${r.correction})`,
        data: treatments.map((v) => (decision(v) ? bar(decision(v).relative_ci) : null)),
        backgroundColor: "rgba(37, 99, 235, 0.35)", borderColor: "#2563eb", borderWidth: 1, barPercentage: 0.35,
      },
      {
        type: "scatter", label: "Lift",
        data: treatments.map((v) => ({ x: pct(v.comparison[metric].relative_lift), y: v.name })),
        backgroundColor: "#111827", pointRadius: 6, pointStyle: "rectRot",
      },
    ];
    chart(id, {
      data: { labels: treatments.map((v) => v.name), datasets },
      options: {
        indexAxis: "y",
        scales: {
          x: { title: { display: true, text: title }, ticks: { callback: (x) => `${x}%` } },
          y: { type: "category", labels: treatments.map((v) => v.name) },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (ctx) => (Array.isArray(ctx.raw) ? `${ctx.dataset.label}: ${ctx.raw[0].toFixed(1)}% to ${ctx.raw[1].toFixed(1)}%` : `Lift: ${ctx.raw.x.toFixed(1)}%`),
            },
          },
        },
      },
    });
  }

  function drawLines(id, t, field, scale, yTitle) {
    chart(id, {
      type: "line",
      data: {
        labels: t.days,
        datasets: t.variants.map((v, i) => ({
          label: v.name,
          data: v[field].map((x) => (x == null ? null : x * scale)),
          borderColor: COLORS[i % COLORS.length],
          backgroundColor: COLORS[i % COLORS.length],
          pointRadius: t.days.length > 60 ? 0 : 3,
          tension: 0.2,
        })),
      },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: {
          y: { beginAtZero: true, title: { display: true, text: yTitle } },
          // A few days: points in the middle of their day rather than on the edges.
          x: { offset: t.days.length < 8, ticks: { maxRotation: 0, autoSkip: true } },
        },
      },
    });
  }

  function renderTimeseries(t) {
    drawLines("users-chart", t, "cumulative_users", 1, "Users exposed so far");
    drawLines("rate-chart", t, "cumulative_conversion_rate", 100, `${t.event_type} conversion so far (%)`);
  }

  // --- navigation --------------------------------------------------------------------

  async function route() {
    showError(null);
    if (!key()) return showKeyForm();
    $("key-form").hidden = true;
    $("forget-key").hidden = false;
    const m = location.hash.match(/^#\/experiments\/(\d+)$/);
    try {
      if (m) {
        await openExperiment(m[1]);
      } else {
        $("experiment").hidden = true;
        document.body.dataset.state = "list";
        await loadList(false);
      }
    } catch (e) {
      showError(e);
    }
  }

  function guard(f) {
    return (event) => {
      if (event) event.preventDefault();
      Promise.resolve().then(f).catch((e) => {
        document.body.dataset.results = "error";
        showError(e);
      });
    };
  }

  $("key-form").addEventListener("submit", guard(() => {
    sessionStorage.setItem(KEY, $("key").value);
    $("key").value = "";
    return route();
  }));
  $("forget-key").addEventListener("click", guard(() => {
    sessionStorage.removeItem(KEY);
    return route();
  }));
  $("more").addEventListener("click", guard(() => loadList(true)));
  $("query").addEventListener("submit", guard(showResults));
  for (const id of ["pause", "resume", "stop"]) {
    $(id).addEventListener("click", guard(() => setStatus($(id).dataset.status)));
  }
  window.addEventListener("hashchange", () => route());
  route();
})();
