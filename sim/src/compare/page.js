// paylab compare page: draws the comparison embedded in this page as tables and SVG bar
// charts. No network.
(function () {
  "use strict";
  var selftest = document.getElementById("selftest");
  var fail = window.paylabFail;

  var SVG = "http://www.w3.org/2000/svg";
  var PALETTE = ["#2e6fd7", "#d7263d", "#2e9e58", "#e07b00", "#6b4fbb", "#0096a0", "#5a5f6b", "#b5651d"];

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function row(cell, values) {
    var tr = el("tr");
    values.forEach(function (v) { tr.appendChild(el(cell, {}, String(v))); });
    return tr;
  }
  function show(v) { return v === null || v === undefined ? "-" : String(v); }

  function header(D) {
    var findings = 0;
    D.strategies.forEach(function (s) {
      s.broken.forEach(function (b) { if (b.claimed) { findings += 1; } });
    });
    document.getElementById("headline").textContent = "paylab compare: " + D.strategies.length +
      " strategies over seeds " + D.seeds + (findings ? ", " + findings + " findings" : ", no finding");
    document.querySelector("header").className = findings ? "fail" : "pass";
    document.getElementById("summary").textContent = "Every strategy ran every seed with the same " +
      "fault plan and the same client intents (" + D.config + ").";
  }

  function figures(D) {
    var t = document.getElementById("figures");
    t.appendChild(row("th", ["strategy", "runs passing", "clean runs", "invariants broken",
      "money at risk", "pay p50 / p99 ms", "payments per sim s", "RPCs per payment",
      "fsyncs per payment", "heal to converged ms"]));
    D.strategies.forEach(function (s) {
      var broken = s.broken.map(function (b) { return b.invariant + " " + b.runs; }).join(", ");
      var tr = row("td", [s.strategy, s.passing + " of " + s.runs, s.clean, broken || "none",
        s.money_at_risk, show(s.pay_p50_ms) + " / " + show(s.pay_p99_ms),
        s.payments_per_sim_second, s.rpcs_per_payment, s.fsyncs_per_payment, show(s.converge_ms)]);
      tr.setAttribute("data-strategy", s.strategy);
      t.appendChild(tr);
    });
  }

  // A grouped horizontal bar chart: one group per strategy, one bar per series.
  function bars(id, D, series, unit) {
    var box = document.getElementById(id);
    var rows = [];
    D.strategies.forEach(function (s) {
      series.forEach(function (f) { rows.push({ s: s.strategy, name: f.name, v: Number(f.value(s)) || 0 }); });
    });
    var max = Math.max.apply(null, rows.map(function (r) { return r.v; }).concat([1]));
    var barH = 16, gap = 4, left = 260, width = 760;
    var chart = svg("svg", { width: String(left + width + 80), height: String(rows.length * (barH + gap) + 30), role: "img" });
    rows.forEach(function (r, i) {
      var y = i * (barH + gap);
      var w = Math.max(1, Math.round(width * r.v / max));
      var colour = PALETTE[series.findIndex(function (f) { return f.name === r.name; }) % PALETTE.length];
      chart.appendChild(svg("text", { x: "0", y: String(y + barH - 3), "font-size": "12" }, r.s + " · " + r.name));
      var bar = svg("rect", { x: String(left), y: String(y), width: String(r.v ? w : 0), height: String(barH), fill: colour, "class": "bar" });
      bar.appendChild(svg("title", {}, r.s + " " + r.name + ": " + r.v + unit));
      chart.appendChild(bar);
      chart.appendChild(svg("text", { x: String(left + (r.v ? w : 0) + 4), y: String(y + barH - 3), "font-size": "12" }, String(r.v) + unit));
    });
    box.appendChild(chart);
    return chart;
  }

  function brokenChart(D) {
    var names = [];
    D.strategies.forEach(function (s) {
      s.broken.forEach(function (b) { if (names.indexOf(b.invariant) < 0) { names.push(b.invariant); } });
    });
    if (!names.length) { names = ["none"]; }
    return bars("chart-broken", D, names.map(function (n) {
      return { name: n, value: function (s) {
        var b = s.broken.find(function (x) { return x.invariant === n; });
        return b ? b.runs : 0;
      } };
    }), " runs");
  }

  function details(D) {
    var box = document.getElementById("details");
    D.strategies.forEach(function (s) {
      box.appendChild(el("h3", {}, s.strategy));
      box.appendChild(el("p", {}, "Documented weakness: " + s.claims.weakness + "."));
      var ul = el("ul");
      if (!s.broken.length) { ul.appendChild(el("li", {}, "No invariant broke in any run.")); }
      s.broken.forEach(function (b) {
        var li = el("li", { "data-kind": b.kind }, b.invariant + ": " + b.runs + " runs, " + b.kind +
          "; first seed " + b.first_seed + ": ");
        li.appendChild(el("code", {}, b.repro));
        ul.appendChild(li);
      });
      box.appendChild(ul);
    });
  }

  try {
    var D = JSON.parse(document.getElementById("compare-data").textContent);
    header(D);
    figures(D);
    var charts = [
      brokenChart(D),
      bars("chart-latency", D, [
        { name: "p50", value: function (s) { return s.pay_p50_ms; } },
        { name: "p99", value: function (s) { return s.pay_p99_ms; } }
      ], " ms"),
      bars("chart-money", D, [{ name: "money at risk", value: function (s) { return s.money_at_risk; } }], " CNY")
    ];
    details(D);
    selftest.setAttribute("data-charts", String(charts.filter(function (c) {
      return c.querySelectorAll("rect").length > 0;
    }).length));
    selftest.setAttribute("data-strategies", String(D.strategies.length));
    selftest.setAttribute("data-ready", "1");
  } catch (e) {
    fail(e && e.message ? e.message : e);
  }
})();
