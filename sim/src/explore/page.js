// paylab failure explorer: draws the run data embedded in this page. No network.
(function () {
  "use strict";
  var selftest = document.getElementById("selftest");
  var fail = window.paylabFail;

  var OUTCOME = ["ok", "fail", "unknown"];
  var OP_COLOUR = ["#2e9e58", "#e07b00", "#8a6fd1"];
  var FAULT_COLOUR = {
    crash: "rgba(215, 38, 61, 0.30)", pause: "rgba(120, 120, 120, 0.30)",
    partition: "rgba(52, 101, 164, 0.25)", "one-way": "rgba(52, 101, 164, 0.18)",
    loss: "rgba(240, 160, 0, 0.20)", latency: "rgba(240, 200, 0, 0.20)",
    duplicate: "rgba(170, 90, 200, 0.20)", delay: "rgba(200, 120, 60, 0.20)",
    "clock-jump": "rgba(0, 150, 150, 0.45)", "slow-disk": "rgba(110, 80, 40, 0.25)",
    buggify: "rgba(230, 0, 120, 0.20)", fault: "rgba(100, 100, 100, 0.20)"
  };
  var AXIS = 22, ROW = 7, NODE_H = 18, MAX_ROWS = 4;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function ms(t) { return (t / 1000).toFixed(3) + " s"; }

  function evidence(x) {
    return Object.keys(x.evidence).map(function (k) { return k + "=" + x.evidence[k]; }).join("  ");
  }

  function header(D) {
    document.getElementById("headline").textContent = D.verdict + " - " + D.headline;
    document.querySelector("header").className = D.verdict === "PASS" ? "pass" : "fail";
    var first = D.explanations[0];
    document.getElementById("summary").textContent = first ?
      first.invariant + ": " + first.message + ". " + first.rule : "";
    document.getElementById("subtitle").textContent = "seed " + D.seed + " | " + D.ops_total +
      " operations | " + D.plan.length + " faults | simulated " + ms(D.sim_ms) + " | " + D.config;
    document.getElementById("repro").textContent = "repro: " + D.repro;
    var box = document.getElementById("explanations");
    if (D.bug) {
      box.appendChild(el("p", { "class": "bug" }, "Planted bug " + D.bug.name + ": " +
        D.bug.breaks + " (must be caught by " + D.bug.caught_by + ")."));
    }
    var groups = {};
    D.explanations.forEach(function (x) { (groups[x.invariant] = groups[x.invariant] || []).push(x); });
    Object.keys(groups).forEach(function (name) {
      var list = groups[name], x = list[0];
      var div = el("div", { "class": "violation", "data-invariant": name });
      div.appendChild(el("h3", {}, name + (list.length > 1 ? " (" + list.length + " violations)" : "")));
      div.appendChild(el("p", { "class": "rule" }, "The rule: " + x.rule));
      div.appendChild(el("p", {}, "What happened: " + x.message + "."));
      if (Object.keys(x.evidence).length) { div.appendChild(el("p", { "class": "evidence" }, "Evidence: " + evidence(x))); }
      if (list.length > 1) {
        var more = el("details"), ul = el("ul");
        more.appendChild(el("summary", {}, (list.length - 1) + " more of the same rule"));
        list.slice(1).forEach(function (y) { ul.appendChild(el("li", {}, y.message + " | " + evidence(y))); });
        more.appendChild(ul);
        div.appendChild(more);
      }
      box.appendChild(div);
    });
  }

  // Rows within each client lane, so that overlapping operations do not hide each other.
  function layout(D) {
    var ends = D.lanes.map(function () { return []; });
    var rows = new Array(D.ops.length);
    var order = D.ops.map(function (_, i) { return i; });
    order.sort(function (a, b) { return D.ops[a][1] - D.ops[b][1]; });
    order.forEach(function (i) {
      var op = D.ops[i], lane = ends[op[0]], r = 0;
      while (r < lane.length && lane[r] > op[1]) { r += 1; }
      if (r >= MAX_ROWS) { r = i % MAX_ROWS; }
      lane[r] = Math.max(lane[r] || 0, op[2]);
      rows[i] = r;
    });
    var top = AXIS;
    var lanes = D.lanes.map(function (l, i) {
      var n = l.kind === "client" ? Math.max(1, ends[i].length) : 0;
      var h = l.kind === "client" ? n * ROW + 6 : NODE_H;
      var lane = { name: l.name, kind: l.kind, top: top, height: h };
      top += h;
      return lane;
    });
    return { rows: rows, lanes: lanes, height: top };
  }

  function labels(L) {
    var box = document.getElementById("lane-labels");
    L.lanes.forEach(function (l) {
      var d = el("div", { "class": "lane lane-" + l.kind, "data-lane": l.name }, l.name);
      d.style.height = l.height + "px";
      box.appendChild(d);
    });
  }

  function Timeline(D, L) {
    var canvas = document.getElementById("canvas");
    var ctx = canvas.getContext("2d");
    var end = Math.max(D.sim_ms, 1);
    D.ops.forEach(function (op) { end = Math.max(end, op[2]); });
    end = end * 1.04 + 1;
    var view = { t0: 0, t1: end };
    var width = 0;
    function resize() {
      var ratio = window.devicePixelRatio || 1;
      width = canvas.parentNode.clientWidth || 800;
      canvas.width = Math.floor(width * ratio);
      canvas.height = Math.floor(L.height * ratio);
      canvas.style.height = L.height + "px";
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    }
    function x(t) { return (t - view.t0) / (view.t1 - view.t0) * width; }
    function t(px) { return view.t0 + px / width * (view.t1 - view.t0); }
    function axis() {
      var span = view.t1 - view.t0, step = Math.pow(10, Math.floor(Math.log10(span / 8)));
      if (span / step > 16) { step *= 5; } else if (span / step > 8) { step *= 2; }
      ctx.fillStyle = "#4a5466"; ctx.font = "10px sans-serif";
      for (var s = Math.ceil(view.t0 / step) * step; s <= view.t1; s += step) {
        ctx.fillRect(x(s), AXIS - 5, 1, 5);
        ctx.fillText(ms(s), x(s) + 2, 10);
      }
    }
    function draw() {
      ctx.clearRect(0, 0, width, L.height);
      L.lanes.forEach(function (l, i) {
        ctx.fillStyle = i % 2 ? "#fafbfc" : "#ffffff";
        ctx.fillRect(0, l.top, width, l.height);
      });
      axis();
      D.windows.forEach(function (w) {
        var x0 = x(w.start), x1 = Math.max(x(w.end), x0 + 3);
        if (x1 < 0 || x0 > width) { return; }
        ctx.fillStyle = FAULT_COLOUR[w.kind] || FAULT_COLOUR.fault;
        w.lanes.forEach(function (li) {
          var l = L.lanes[li];
          ctx.fillRect(x0, l.top, x1 - x0, l.height);
          if (w.kind === "crash") { ctx.fillStyle = "#d7263d"; ctx.fillRect(x0, l.top, 2, l.height); }
          if ((x1 - x0 > 36 || w.kind === "crash") && l.kind !== "client") {
            ctx.fillStyle = "#1d2330"; ctx.font = "10px sans-serif";
            var at = x1 - x0 > 36 ? Math.max(x0, 0) + 4 : x1 + 3;
            ctx.fillText(w.kind, at, l.top + l.height - 5);
          }
          ctx.fillStyle = FAULT_COLOUR[w.kind] || FAULT_COLOUR.fault;
        });
      });
      var named = [];
      D.ops.forEach(function (op, i) {
        var x0 = x(op[1]), x1 = x(op[2]);
        if (x1 < 0 || x0 > width) { return; }
        var l = L.lanes[op[0]], y = l.top + 3 + L.rows[i] * ROW;
        ctx.fillStyle = OP_COLOUR[op[3]];
        ctx.fillRect(x0, y, Math.max(1, x1 - x0), ROW - 2);
        if (op[8]) { named.push([x0, x1, y]); }
      });
      ctx.strokeStyle = "#d7263d"; ctx.lineWidth = 2;
      named.forEach(function (n) {
        ctx.strokeRect(n[0] - 2, n[2] - 2, Math.max(1, n[1] - n[0]) + 4, ROW + 2);
        ctx.fillStyle = "#d7263d";
        ctx.beginPath(); ctx.moveTo(n[0], n[2] - 3); ctx.lineTo(n[0] - 4, n[2] - 9); ctx.lineTo(n[0] + 4, n[2] - 9); ctx.fill();
      });
      if (D.healed_ms !== null) {
        ctx.fillStyle = "#1d2330"; ctx.fillRect(x(D.healed_ms), AXIS, 1, L.height - AXIS);
        ctx.fillText("healed", x(D.healed_ms) + 3, AXIS + 10);
      }
      ctx.font = "bold 10px sans-serif";
      D.seen.forEach(function (s, i) {
        var sx = x(s[1]);
        ctx.fillStyle = "#d7263d";
        for (var y = AXIS; y < L.height; y += 6) { ctx.fillRect(sx, y, 1.5, 3); }
        var label = s[0] + " broken (seen)";
        var w = ctx.measureText(label).width;
        ctx.fillText(label, sx + w + 6 > width ? sx - w - 4 : sx + 4, AXIS + 22 + 11 * i);
      });
      ctx.font = "10px sans-serif";
      document.getElementById("range").textContent = ms(view.t0) + " - " + ms(view.t1);
    }
    function zoom(factor, at) {
      var c = t(at === undefined ? width / 2 : at);
      var span = Math.max(2, (view.t1 - view.t0) * factor);
      view.t0 = c - (c - view.t0) * factor;
      view.t1 = view.t0 + span;
      draw();
    }
    function show(t0, t1) {
      var pad = Math.max(20, (t1 - t0) * 0.15);
      view.t0 = Math.max(0, t0 - pad); view.t1 = t1 + pad; draw();
    }
    return { resize: resize, draw: draw, zoom: zoom, show: show, view: view, end: end, t: t, canvas: canvas };
  }

  function interact(D, L, T) {
    var drag = null, tip = document.getElementById("tip");
    T.canvas.addEventListener("wheel", function (e) {
      e.preventDefault();
      T.zoom(e.deltaY < 0 ? 0.8 : 1.25, e.offsetX);
    }, { passive: false });
    T.canvas.addEventListener("mousedown", function (e) { drag = { x: e.offsetX, t0: T.view.t0, t1: T.view.t1 }; });
    window.addEventListener("mouseup", function () { drag = null; });
    T.canvas.addEventListener("mousemove", function (e) {
      if (drag) {
        var dt = T.t(drag.x) - T.t(e.offsetX);
        T.view.t0 = drag.t0 + dt; T.view.t1 = drag.t1 + dt; T.draw();
        return;
      }
      var text = describe(D, L, T.t(e.offsetX), e.offsetY);
      tip.hidden = !text;
      tip.textContent = text || "";
      tip.style.left = (e.offsetX + 12) + "px"; tip.style.top = (e.offsetY + 12) + "px";
    });
    T.canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
    document.getElementById("zoom-in").onclick = function () { T.zoom(0.5); };
    document.getElementById("zoom-out").onclick = function () { T.zoom(2); };
    document.getElementById("zoom-fit").onclick = function () { T.show(0, T.end); };
    document.getElementById("zoom-named").onclick = function () { zoomNamed(D, T); };
    window.addEventListener("resize", function () { T.resize(); T.draw(); });
  }

  function zoomNamed(D, T) {
    var lo = Infinity, hi = -Infinity;
    D.ops.forEach(function (op) { if (op[8]) { lo = Math.min(lo, op[1]); hi = Math.max(hi, op[2]); } });
    if (lo <= hi) { T.show(lo, hi); }
  }

  function describe(D, L, at, y) {
    var li = -1;
    L.lanes.forEach(function (l, i) { if (y >= l.top && y < l.top + l.height) { li = i; } });
    if (li < 0) { return ""; }
    var lane = L.lanes[li], slack = 0;
    for (var i = 0; i < D.ops.length; i += 1) {
      var op = D.ops[i];
      if (op[0] !== li || L.rows[i] !== Math.floor((y - lane.top - 3) / ROW)) { continue; }
      slack = (op[2] - op[1]) < 1 ? 1 : 0;
      if (at >= op[1] - slack && at <= op[2] + slack) {
        return op[4] + " " + op[5] + (op[6] ? " trade " + op[6] : "") + (op[7] ? " amount " + op[7] : "") +
          " | " + OUTCOME[op[3]] + (op[9] ? " (" + op[9] + ")" : "") + " | " + ms(op[1]) + " -> " + ms(op[2]) +
          (op[8] ? " | NAMED BY THE VIOLATION" : "");
      }
    }
    var hits = D.windows.filter(function (w) { return w.lanes.indexOf(li) >= 0 && at >= w.start && at <= Math.max(w.end, w.start + 1); });
    return hits.map(function (w) { return w.label + " (" + ms(w.start) + " -> " + ms(w.end) + ")"; }).join("\n");
  }

  function tables(D, T) {
    var named = document.getElementById("named-ops");
    named.appendChild(row("th", ["client", "kind", "request", "trade", "amount", "invoke", "complete", "outcome"]));
    var shown = 0;
    D.ops.forEach(function (op) {
      if (!op[8] || shown >= 500) { return; }
      shown += 1;
      var tr = row("td", [D.lanes[op[0]].name, op[4], op[5], op[6] || "", op[7] || "", ms(op[1]), ms(op[2]),
        OUTCOME[op[3]] + (op[9] ? " (" + op[9] + ")" : "")]);
      tr.className = "highlighted";
      tr.setAttribute("data-request", op[5]);
      tr.lastChild.className = OUTCOME[op[3]];
      tr.onclick = function () { T.show(op[1], op[2]); };
      named.appendChild(tr);
    });
    if (!shown) { named.appendChild(row("td", ["(no operation of the history is named by the violations)"])); }
    var faults = document.getElementById("faults");
    faults.appendChild(row("th", ["kind", "lanes", "from", "to", "what"]));
    D.windows.forEach(function (w) {
      var names = w.lanes.map(function (i) { return D.lanes[i].name; }).join(", ");
      faults.appendChild(row("td", [w.kind, names, ms(w.start), ms(w.end), w.label]));
    });
    var probes = document.getElementById("probes");
    probes.appendChild(row("th", ["probe", "count"]));
    Object.keys(D.probes).forEach(function (k) { probes.appendChild(row("td", [k, String(D.probes[k])])); });
    return shown;
  }

  function row(cell, values) {
    var tr = el("tr");
    values.forEach(function (v) { tr.appendChild(el(cell, {}, v)); });
    return tr;
  }

  function legend() {
    var box = document.getElementById("legend");
    [["ok", OP_COLOUR[0]], ["failed", OP_COLOUR[1]], ["unknown", OP_COLOUR[2]], ["crash", "rgba(215,38,61,0.5)"],
      ["partition", FAULT_COLOUR.partition], ["named by a violation", "#d7263d"]].forEach(function (p) {
      var s = el("span"), i = el("i");
      i.style.background = p[1]; s.appendChild(i); s.appendChild(document.createTextNode(p[0]));
      box.appendChild(s);
    });
  }

  try {
    var D = JSON.parse(document.getElementById("run-data").textContent);
    header(D);
    var L = layout(D);
    labels(L);
    legend();
    var T = Timeline(D, L);
    T.resize();
    T.draw();
    interact(D, L, T);
    var highlighted = tables(D, T);
    selftest.setAttribute("data-lanes", String(document.querySelectorAll("#lane-labels .lane").length));
    selftest.setAttribute("data-highlighted", String(highlighted));
    selftest.setAttribute("data-ops", String(D.ops.length));
    selftest.setAttribute("data-ready", "1");
  } catch (e) {
    fail(e && e.message ? e.message : e);
  }
})();
