// The results page: plain browser JavaScript, no build step. It only calls the JSON API
// (same origin) with the key from sessionStorage in an Authorization header.
"use strict";

(function () {
  const KEY = "abtest.api_key";
  const $ = (id) => document.getElementById(id);
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

  const { fmt, el, level, testName, resultColumns, variantRow, metricColumns, metricRows, head } = window.abtestTables;

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
    // The breakdown is part of the results answer rather than a request of its own: one
    // window (its end is "now" of that request) for the table and every slice. The API
    // refuses it together with a segment, and the page shows its message.
    const dimension = $("dimension").value.trim();
    if (dimension) q.set("dimension", dimension);
    const m = state.experiment.metrics || {};
    const hasMetrics = Boolean(m.primary || (m.secondary || []).length || (m.guardrails || []).length);
    const decided = new URLSearchParams(series);
    decided.delete("event_type");
    if (dimension) decided.set("dimension", dimension);
    const [results, timeseries, metrics] = await Promise.all([
      api("GET", `/experiments/${id}/results?${q}`),
      api("GET", `/experiments/${id}/timeseries?${series}`),
      hasMetrics ? api("GET", `/experiments/${id}/results?${decided}`) : null,
    ]);
    renderResults(results);
    renderTimeseries(timeseries);
    renderMetrics(metrics);
    renderBreakdown(results);
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

    const hasValue = r.value_property != null;
    const columns = resultColumns(r, r.variants);
    const table = $("results-table");
    head(table, columns);
    table.tBodies[0].replaceChildren(...r.variants.map((v) => variantRow(columns, v)));
    $("results-note").textContent =
      `Lift is relative to ${r.control}. Each metric is decided by one test, the experiment's ` +
      `${testName(r)} test on the relative lift: its p-value, adjusted (${r.correction}), below ${r.alpha} is ` +
      `"Significant", and its ${level(r)} interval is widened to the adjusted level, so the interval excludes 0 ` +
      `exactly when the row says Yes. A control mean of 0 or below has no relative lift: the interval is then ` +
      `the difference in the metric's units.` +
      (r.significance === "fixed_horizon" ? "" : " Always-valid intervals stay correct however often you look.");
    drawLift("lift-chart", r, "conversion", `Relative lift of ${r.event_type} conversion vs ${r.control} (%)`);
    $("value-lift-card").hidden = !hasValue;
    if (hasValue) drawLift("value-lift-chart", r, "value", `Relative lift of mean ${r.value_property} vs ${r.control} (%)`);
  }

  // Every catalog metric of the experiment: one row per metric and treatment, each number
  // from that metric's decision (corrected across the decision's metrics), in the order of
  // a ship decision (tables.js `metricRows`).
  function renderMetrics(r) {
    $("metrics-card").hidden = !r;
    if (!r) return;
    const columns = metricColumns(r);
    const table = $("metrics-table");
    head(table, columns);
    table.tBodies[0].replaceChildren(...metricRows(columns, r.metrics));
    $("metrics-note").textContent =
      `Phase ${r.phase.phase}. Each metric is decided by the experiment's test; the correction (${r.correction}) spans every ` +
      "primary and secondary metric of every treatment, guardrails are corrected on their own and pass when the interval " +
      "rules out a worsening beyond their margin.";
    renderMetricsBreakdown(r);
  }

  // The decision metrics per value of the dimension (`breakdown` of the metrics answer): a
  // row per slice, metric and treatment, in the decision table's columns.
  function renderMetricsBreakdown(r) {
    const b = r.breakdown;
    $("metrics-breakdown-card").hidden = !b;
    if (!b) return;
    $("metrics-breakdown-dimension").textContent = b.dimension;
    const columns = metricColumns(r);
    const table = $("metrics-breakdown-table");
    head(table, [["slice", b.dimension], ...columns]);
    table.tBodies[0].replaceChildren(...b.slices.flatMap((s) => metricRows(columns, s.metrics,
      { "data-slice": s.other ? "" : s.value, "data-other": String(s.other) },
      () => el("td", { "data-field": "slice", "data-srm": String(s.srm.mismatch) }, sliceName(s)))));
    $("metrics-breakdown-note").textContent =
      `Each slice is computed from its own users alone; the correction (${r.correction}) spans every slice × primary and ` +
      "secondary metric × treatment, each guardrail's spans every slice × treatment, so the intervals are at least as " +
      "wide as in the decision table above." +
      (b.slices.some((s) => s.srm.mismatch) ? " ⚠ marks a slice whose users per variant do not match the allocations." : "");
  }

  // The results per value of the dimension asked for (`breakdown` of the same answer as the
  // results table): a row per slice and variant, in the results table's columns, so each
  // interval, adjusted p and "Significant" is the slice's decision, the table's test.
  function renderBreakdown(r) {
    const b = r.breakdown;
    $("breakdown-card").hidden = !b;
    if (!b) return;
    $("breakdown-dimension").textContent = b.dimension;
    const columns = resultColumns(r, b.slices.flatMap((s) => s.variants));
    const table = $("breakdown-table");
    head(table, [["slice", b.dimension], ...columns]);
    table.tBodies[0].replaceChildren(...b.slices.flatMap((s) => s.variants.map((v) => {
      const attrs = { "data-slice": s.other ? "" : s.value, "data-other": String(s.other) };
      return variantRow(columns, v, attrs, el("td", { "data-field": "slice", "data-srm": String(s.srm.mismatch) }, sliceName(s)));
    })));
    $("breakdown-note").textContent =
      `Each slice is computed from its own users alone, as if asked with ${b.dimension} as the segment; the ` +
      `${level(r)} intervals and adjusted p-values (${r.correction}) span every slice × treatment, so they are at least ` +
      `as wide and as large as those of one segment asked alone. The ${b.slices.some((s) => s.other) ? "10 values with the most users are shown, the rest as one \"other\" slice" : "slices are the values with the most users"}.` +
      (b.slices.some((s) => s.srm.mismatch) ? " ⚠ marks a slice whose users per variant do not match the allocations." : "");
  }

  function sliceName(s) {
    const name = s.other ? "other values" : s.value === "" ? "(not set)" : s.value;
    return s.srm.mismatch ? `${name} ⚠` : name;
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
