// Rapport dashboard: polls /dashboard/data and renders it. No framework, no network beyond
// this origin; every text from the engine goes through textContent, never innerHTML.
"use strict";

(function () {
  const REFRESH_MS = 3000;
  const SEGMENT_NAMES = {
    champions: "Champions",
    loyal_customers: "Loyal customers",
    potential_loyalists: "Potential loyalists",
    new_customers: "New customers",
    promising: "Promising",
    need_attention: "Need attention",
    about_to_sleep: "About to sleep",
    at_risk: "At risk",
    cant_lose_them: "Can't lose them",
    hibernating: "Hibernating",
    lost: "Lost",
  };
  const STAGE_NAMES = {
    new: "New (1 order)",
    active: "Active (2-3)",
    loyal: "Loyal (4+)",
    at_risk: "At risk",
    lapsed: "Lapsed",
  };
  const TIER_COLORS = {
    bronze: "#b45309",
    silver: "#64748b",
    gold: "#ca8a04",
    platinum: "#4338ca",
  };
  const STAGE_COLORS = {
    new: "#6366f1",
    active: "#4f46e5",
    loyal: "#4338ca",
    at_risk: "#d97706",
    lapsed: "#b91c1c",
  };
  const SERIES_COLORS = { accepted: "#15803d", duplicate: "#d97706", rejected: "#b91c1c" };

  const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  let money = null;
  let moneyCurrency = null;
  const charts = {};
  let updates = 0;

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function formatMoney(value, currency) {
    if (value === null || value === undefined) return "—";
    if (currency !== moneyCurrency) {
      try {
        money = new Intl.NumberFormat(undefined, {
          style: "currency",
          currency: currency,
          maximumFractionDigits: 0,
        });
      } catch (e) {
        money = integer;
      }
      moneyCurrency = currency;
    }
    return money.format(value);
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds === 0) return "0 s";
    if (seconds < 1) return decimal.format(seconds * 1000) + " ms";
    if (seconds < 90) return decimal.format(seconds) + " s";
    if (seconds < 5400) return decimal.format(seconds / 60) + " min";
    if (seconds < 172800) return decimal.format(seconds / 3600) + " h";
    return decimal.format(seconds / 86400) + " d";
  }

  function formatTime(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    const time = date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    if (date.toDateString() === new Date().toDateString()) return time;
    return date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" }) + ", " + time;
  }

  function percent(value) {
    return value === null || value === undefined ? "—" : decimal.format(value * 100) + "%";
  }

  function setStatus(ok, text) {
    $("status-dot").className = "dot " + (ok ? "ok" : "down");
    $("status-text").textContent = text;
  }

  // --- key figures ---------------------------------------------------------------------------

  function renderKpis(data) {
    const w = data.worker;
    const currency = data.currency;
    if (w.events_per_second === null) {
      $("kpi-eps").textContent = "—";
      $("kpi-eps-sub").textContent = "measuring…";
    } else {
      $("kpi-eps").textContent = decimal.format(w.events_per_second);
      const o = w.by_outcome;
      $("kpi-eps-sub").textContent =
        "last minute: accepted " + decimal.format(o.accepted || 0) +
        " · duplicates " + decimal.format(o.duplicate || 0) +
        " · rejected " + decimal.format(o.rejected || 0);
    }
    const fresh = $("kpi-fresh");
    fresh.textContent = formatDuration(w.freshness_seconds);
    fresh.className = "value";
    if (data.clock_mode === "live" && w.freshness_seconds !== null) {
      if (w.freshness_seconds > 300) fresh.classList.add("bad");
      else if (w.freshness_seconds > 30) fresh.classList.add("warn");
    }
    $("kpi-fresh-sub").textContent = w.watermark
      ? "newest event " + formatTime(w.watermark)
      : "no event yet";
    $("kpi-buyers").textContent = integer.format(data.rfm.buyers);
    $("kpi-revenue").textContent = formatMoney(data.rfm.revenue, currency);
    $("kpi-revenue-sub").textContent = data.rfm.buyers
      ? "average " + formatMoney(data.rfm.revenue / data.rfm.buyers, currency) + " per buyer"
      : "no buyer yet";
    $("kpi-latency").textContent =
      (w.decision_p95_above ? "> " : "") + formatDuration(w.decision_p95_seconds);
    $("kpi-latency-sub").textContent =
      w.decision_p50_seconds === null
        ? "no decision in the last minute"
        : "median " + (w.decision_p50_above ? "> " : "") + formatDuration(w.decision_p50_seconds) +
          ", event time to decision, last minute";
    const dlq = $("kpi-dlq");
    dlq.textContent = w.deadletters_per_second === null ? "—" : decimal.format(w.deadletters_per_second) + "/s";
    dlq.className = "value" + (w.deadletters_per_second > 0 ? " warn" : "");
    $("kpi-dlq-sub").textContent = integer.format(w.totals.deadletters) + " since this worker started";
  }

  // --- RFM heatmap -----------------------------------------------------------------------------

  function renderGrid(data) {
    const grid = $("rfm-grid");
    const rows = data.rfm.grid;
    let max = 0;
    rows.forEach((row) => row.cells.forEach((c) => (max = Math.max(max, c.customers))));
    const nodes = [];
    rows.forEach((row) => {
      nodes.push(el("div", "axis", "R " + row.r));
      row.cells.forEach((c) => {
        const cell = el("div", "cell");
        cell.setAttribute("role", "cell");
        cell.dataset.r = String(row.r);
        cell.dataset.f = String(c.f);
        cell.dataset.count = String(c.customers);
        const share = max > 0 ? c.customers / max : 0;
        if (c.customers === 0) {
          cell.classList.add("zero");
        } else {
          const alpha = 0.12 + 0.83 * share;
          cell.style.background = "rgba(67, 56, 202, " + alpha.toFixed(3) + ")";
          if (alpha > 0.5) cell.classList.add("dark");
        }
        cell.title =
          "R " + row.r + ", F " + c.f + ": " + c.customers + " customers" +
          (c.avg_revenue !== null ? ", average spend " + formatMoney(c.avg_revenue, data.currency) : "");
        cell.appendChild(el("span", "count", integer.format(c.customers)));
        cell.appendChild(
          el("span", "spend", c.avg_revenue === null ? "\u00a0" : "avg " + formatMoney(c.avg_revenue, data.currency))
        );
        nodes.push(cell);
      });
    });
    nodes.push(el("div", "axis corner", "R \\ F"));
    [1, 2, 3, 4, 5].forEach((f) => nodes.push(el("div", "axis", "F " + f)));
    grid.replaceChildren(...nodes);
  }

  // --- bars ------------------------------------------------------------------------------------

  function renderBars(container, rows, colors) {
    const max = rows.reduce((m, r) => Math.max(m, r.value), 0);
    container.replaceChildren(
      ...rows.map((row) => {
        const bar = el("div", "bar");
        bar.dataset.name = row.key;
        const label = el("span", "label", row.label);
        label.title = row.label;
        bar.appendChild(label);
        const track = el("span", "track");
        const fill = el("span", "fill" + (row.value === 0 ? " zero" : ""));
        fill.style.width = (max > 0 ? (100 * row.value) / max : 0).toFixed(1) + "%";
        if (colors && colors[row.key]) fill.style.background = colors[row.key];
        track.appendChild(fill);
        bar.appendChild(track);
        bar.appendChild(el("span", "num", integer.format(row.value)));
        return bar;
      })
    );
  }

  function renderPopulation(data) {
    renderBars(
      $("segments"),
      data.rfm.segments.map((s) => ({ key: s.name, label: SEGMENT_NAMES[s.name] || s.name, value: s.customers }))
    );
    renderBars(
      $("lifecycle"),
      data.rfm.lifecycle.map((s) => ({ key: s.name, label: STAGE_NAMES[s.name] || s.name, value: s.customers })),
      STAGE_COLORS
    );
    renderBars(
      $("tiers"),
      data.rfm.tiers.map((t) => ({
        key: t.name,
        label: t.name.charAt(0).toUpperCase() + t.name.slice(1),
        value: t.customers,
      })),
      TIER_COLORS
    );
  }

  // --- decisions, campaigns, associations ----------------------------------------------------

  function renderDecisions(data) {
    const w = data.worker;
    const order = ["sent", "suppressed", "deferred", "holdout"];
    const rank = (o) => (order.indexOf(o) < 0 ? order.length : order.indexOf(o));
    const decisions = w.decisions.slice().sort((a, b) => rank(a.outcome) - rank(b.outcome));
    const chips = decisions.length
      ? decisions.map((d) => {
          const chip = el("span", "chip " + d.outcome, d.outcome);
          chip.appendChild(el("b", null, integer.format(d.count)));
          return chip;
        })
      : [el("span", "chip", "no decision yet")];
    $("decisions").replaceChildren(...chips);
    renderBars(
      $("suppression"),
      w.suppression.map((s) => ({
        key: s.outcome + ":" + s.reason,
        label: s.reason + (s.outcome === "suppressed" ? "" : " (" + s.outcome + ")"),
        value: s.count,
      })),
      null
    );
    $("suppression-empty").hidden = w.suppression.length > 0;
  }

  function cell(text, className) {
    return el("td", className, text);
  }

  function fillTable(table, empty, rows, build) {
    table.hidden = rows.length === 0;
    empty.hidden = rows.length > 0;
    table.tBodies[0].replaceChildren(...rows.map(build));
  }

  function renderCampaigns(data) {
    fillTable($("campaigns"), $("campaigns-empty"), data.campaigns, (c) => {
      const tr = el("tr");
      const count = (v) => (v === null ? "—" : integer.format(v));
      tr.appendChild(cell(c.campaign));
      tr.appendChild(cell(count(c.sent), "num"));
      tr.appendChild(cell(count(c.suppressed), "num"));
      tr.appendChild(cell(count(c.holdout), "num"));
      tr.appendChild(cell(count(c.converted), "num"));
      tr.appendChild(cell(c.sent && c.converted !== null ? percent(c.converted / c.sent) : "—", "num"));
      const uplift = cell("", "num");
      if (c.uplift === null) {
        uplift.textContent = "—";
      } else {
        const significant = c.uplift_low !== null && (c.uplift_low > 0 || c.uplift_high < 0);
        if (significant) uplift.classList.add(c.uplift > 0 ? "up" : "down");
        uplift.textContent = (c.uplift >= 0 ? "+" : "") + decimal.format(c.uplift * 100) + " pts ";
        if (c.uplift_low !== null && c.uplift_high !== null) {
          uplift.appendChild(
            el("span", "interval", "[" + decimal.format(c.uplift_low * 100) + ", " + decimal.format(c.uplift_high * 100) + "]")
          );
        }
      }
      tr.appendChild(uplift);
      return tr;
    });
  }

  function renderAssociations(data) {
    fillTable($("associations"), $("associations-empty"), data.associations, (a) => {
      const tr = el("tr");
      tr.appendChild(cell(a.product_id));
      tr.appendChild(cell(a.other_product_id));
      tr.appendChild(cell(a.lift === null ? "—" : decimal.format(a.lift), "num"));
      tr.appendChild(cell(percent(a.confidence), "num"));
      tr.appendChild(cell(a.baskets === null ? "—" : integer.format(a.baskets), "num"));
      return tr;
    });
  }

  // --- charts (uPlot) --------------------------------------------------------------------------

  function chartWidth(node) {
    return Math.max(node.clientWidth, 240);
  }

  function makeChart(id, series, yFormat) {
    const node = $(id);
    const options = {
      width: chartWidth(node),
      height: 200,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max * 1.1, 1)] } },
      axes: [
        { stroke: "#6b7280", grid: { stroke: "#f1f5f9" }, ticks: { stroke: "#e5e7eb" } },
        {
          stroke: "#6b7280",
          grid: { stroke: "#f1f5f9" },
          ticks: { stroke: "#e5e7eb" },
          size: 60,
          values: (u, splits) => splits.map(yFormat),
        },
      ],
      series: [{}].concat(
        series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: s.fill || undefined,
          spanGaps: false,
          value: (u, v) => (v === null || v === undefined ? "—" : yFormat(v)),
        }))
      ),
    };
    const empty = [[]].concat(series.map(() => []));
    const plot = new uPlot(options, empty, node);
    new ResizeObserver(() => plot.setSize({ width: chartWidth(node), height: 200 })).observe(node);
    return plot;
  }

  function renderCharts(data) {
    if (typeof uPlot === "undefined") return;
    const h = data.worker.history;
    if (!charts.throughput) {
      charts.throughput = makeChart(
        "chart-throughput",
        [
          { label: "accepted/s", color: SERIES_COLORS.accepted, fill: "rgba(21, 128, 61, 0.08)" },
          { label: "duplicates/s", color: SERIES_COLORS.duplicate },
          { label: "rejected/s", color: SERIES_COLORS.rejected },
        ],
        (v) => decimal.format(v)
      );
      charts.freshness = makeChart(
        "chart-freshness",
        [{ label: "freshness", color: "#4338ca", fill: "rgba(67, 56, 202, 0.08)" }],
        formatDuration
      );
    }
    charts.throughput.setData([h.t, h.accepted, h.duplicate, h.rejected]);
    charts.freshness.setData([h.t, h.freshness]);
  }

  // --- the loop --------------------------------------------------------------------------------

  function render(data) {
    $("engine-clock").textContent = formatTime(data.engine_clock);
    $("clock-mode").textContent = data.clock_mode === "event" ? "event clock (replay)" : "live clock";
    renderKpis(data);
    renderGrid(data);
    renderPopulation(data);
    renderDecisions(data);
    renderCampaigns(data);
    renderAssociations(data);
    renderCharts(data);
    $("computed").textContent =
      "Customer figures computed " + formatTime(data.population_computed_at) +
      " in " + formatDuration(data.population_seconds) + ".";
    updates += 1;
    document.body.dataset.updates = String(updates);
    document.body.dataset.buyers = String(data.rfm.buyers);
  }

  async function refresh() {
    try {
      const answer = await fetch("/dashboard/data", { cache: "no-store" });
      const data = await answer.json();
      if (!answer.ok) throw new Error(data.error || answer.statusText);
      render(data);
      setStatus(true, "live · updated " + new Date().toLocaleTimeString());
    } catch (err) {
      setStatus(false, "engine unreachable, retrying (" + err.message + ")");
    } finally {
      window.setTimeout(refresh, REFRESH_MS);
    }
  }

  refresh();
})();
