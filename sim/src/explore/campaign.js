// paylab campaign page: draws the campaign data embedded in this page. No network.
(function () {
  "use strict";
  var selftest = document.getElementById("selftest");
  var fail = window.paylabFail;

  var COLOUR = {
    PASS: "#2e9e58", VIOLATION: "#d7263d", LIVENESS: "#e07b00", CRASH: "#6b4fbb",
    HANG: "#5a5f6b", NONDETERMINISM: "#0096a0"
  };
  var STRIP_MAX_H = 480, CELL_MAX = 16, CELL_MIN = 3;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function row(cell, values) {
    var tr = el("tr");
    values.forEach(function (v) { tr.appendChild(el(cell, {}, v)); });
    return tr;
  }
  function swatch(word) {
    var i = el("i", { "class": "swatch" });
    i.style.background = COLOUR[word] || "#999";
    return i;
  }

  function header(D) {
    var failing = D.failures.length;
    document.getElementById("headline").textContent = "paylab campaign: " + D.runs + " runs, " +
      (failing ? failing + " failing" : "every run passed");
    document.querySelector("header").className = failing ? "fail" : "pass";
    var seeds = D.seeds.seed, range = seeds.length ?
      "seeds " + seeds[0] + " to " + seeds[seeds.length - 1] + " (" + seeds.length + " runs)" : "no per-seed results";
    document.getElementById("summary").textContent = range + " | simulated " +
      (D.simulated_ms / 1000).toFixed(1) + " s | " + D.untested.length + " of " + D.coverage.length +
      " fault kinds and probes never fired";
    document.getElementById("subtitle").textContent = "paylab campaign " + D.campaign;
  }

  function counts(D) {
    var t = document.getElementById("counts");
    t.appendChild(row("th", ["verdict", "runs"]));
    D.verdict_words.forEach(function (w) {
      var tr = row("td", [w, String(D.verdicts[w] || 0)]);
      tr.firstChild.insertBefore(swatch(w), tr.firstChild.firstChild);
      tr.setAttribute("data-verdict", w);
      t.appendChild(tr);
    });
  }

  function failures(D) {
    document.getElementById("failures-title").textContent = "Failing seeds (" + D.failures.length + ")";
    var t = document.getElementById("failures");
    if (!D.failures.length) {
      t.appendChild(row("td", ["None: every run passed."]));
      return 0;
    }
    t.appendChild(row("th", ["seed", "verdict", "broken invariants", "repro", "explorer"]));
    D.failures.forEach(function (f) {
      var what = (f.invariants.length ? f.invariants.join(", ") : "-") + (f.detail ? ": " + f.detail : "");
      var tr = row("td", [String(f.seed), f.verdict, what, "repro: " + f.repro, ""]);
      tr.className = "failure";
      tr.id = "seed-" + f.seed;
      tr.setAttribute("data-seed", String(f.seed));
      tr.children[1].insertBefore(swatch(f.verdict), tr.children[1].firstChild);
      tr.children[3].className = "repro";
      var last = tr.lastChild;
      if (f.page) {
        last.appendChild(el("a", { href: f.page }, "explorer"));
      } else {
        last.textContent = f.report ? "no page (" + f.report + ")" : "no report";
      }
      t.appendChild(tr);
    });
    return D.failures.length;
  }

  function coverage(D) {
    document.getElementById("coverage-note").textContent = "Every fault kind and probe, with the runs that " +
      "fired it. " + D.untested.length + " never fired: this campaign has not tested them.";
    var t = document.getElementById("coverage");
    t.appendChild(row("th", ["fault kind or probe", "kind", "runs that fired it"]));
    var untested = 0;
    D.coverage.forEach(function (c) {
      var tr = row("td", [c.name, c.kind, String(c.runs)]);
      if (c.untested) {
        untested += 1;
        tr.className = "untested";
        tr.lastChild.appendChild(el("b", { "class": "untested-mark" }, " untested"));
      }
      t.appendChild(tr);
    });
    return untested;
  }

  function legend(D) {
    var box = document.getElementById("strip-legend");
    D.verdict_words.forEach(function (w) {
      if (!D.verdicts[w]) { return; }
      var s = el("span");
      s.appendChild(swatch(w));
      s.appendChild(document.createTextNode(w + " " + D.verdicts[w]));
      box.appendChild(s);
    });
  }

  // One cell per seed, row after row; the cell shrinks so that 10,000 seeds fit the strip.
  function Strip(D) {
    var S = D.seeds, n = S.seed.length;
    var canvas = document.getElementById("strip"), ctx = canvas.getContext("2d");
    var tip = document.getElementById("tip"), detail = document.getElementById("cell-detail");
    var failure = {};
    D.failures.forEach(function (f) { failure[f.seed] = f; });
    var g = { cell: CELL_MAX, cols: 1, width: 0 };
    function layout() {
      g.width = canvas.parentNode.clientWidth || 800;
      g.cell = CELL_MAX;
      while (g.cell > CELL_MIN && Math.ceil(n / Math.floor(g.width / g.cell)) * g.cell > STRIP_MAX_H) { g.cell -= 1; }
      g.cols = Math.max(1, Math.floor(g.width / g.cell));
      var h = Math.max(1, Math.ceil(n / g.cols)) * g.cell;
      var ratio = window.devicePixelRatio || 1;
      canvas.width = Math.floor(g.width * ratio);
      canvas.height = Math.floor(h * ratio);
      canvas.style.height = h + "px";
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    }
    function draw() {
      ctx.clearRect(0, 0, g.width, canvas.height);
      var gap = g.cell >= 6 ? 1 : 0;
      D.verdict_words.forEach(function (w, v) {
        ctx.fillStyle = COLOUR[w] || "#999";
        for (var i = 0; i < n; i += 1) {
          if (S.verdict[i] === v) {
            ctx.fillRect((i % g.cols) * g.cell, Math.floor(i / g.cols) * g.cell, g.cell - gap, g.cell - gap);
          }
        }
      });
      return n;
    }
    function at(e) {
      var r = canvas.getBoundingClientRect();
      var x = e.clientX - r.left, y = e.clientY - r.top;
      var c = Math.floor(x / g.cell), i = Math.floor(y / g.cell) * g.cols + c;
      return c >= 0 && c < g.cols && i >= 0 && i < n ? { i: i, x: x, y: y } : null;
    }
    function describe(i) {
      var seed = S.seed[i], f = failure[seed], word = D.verdict_words[S.verdict[i]];
      var text = "seed " + seed + ": " + word;
      if (f && f.invariants.length) { text += " (" + f.invariants.join(", ") + ")"; }
      return text + "\nrepro: " + S.repro[i];
    }
    canvas.addEventListener("mousemove", function (e) {
      var p = at(e);
      if (!p) { tip.hidden = true; return; }
      tip.hidden = false;
      tip.textContent = describe(p.i);
      tip.style.left = Math.min(p.x + 12, Math.max(0, g.width - 420)) + "px";
      tip.style.top = (p.y + 14) + "px";
    });
    canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
    canvas.addEventListener("click", function (e) {
      var p = at(e);
      if (!p) { return; }
      detail.textContent = describe(p.i);
      var tr = document.getElementById("seed-" + S.seed[p.i]);
      Array.prototype.forEach.call(document.querySelectorAll("tr.picked"), function (r) { r.className = "failure"; });
      if (tr) { tr.className = "failure picked"; tr.scrollIntoView({ block: "center" }); }
    });
    window.addEventListener("resize", function () { layout(); draw(); });
    layout();
    return draw();
  }

  try {
    var D = JSON.parse(document.getElementById("campaign-data").textContent);
    header(D);
    counts(D);
    legend(D);
    document.getElementById("strip-title").textContent = "Every seed (" + D.seeds.seed.length + ")";
    var cells = Strip(D);
    var listed = failures(D);
    var untested = coverage(D);
    selftest.setAttribute("data-failures", String(listed));
    selftest.setAttribute("data-untested", String(untested));
    selftest.setAttribute("data-cells", String(cells));
    selftest.setAttribute("data-runs", String(D.runs));
    selftest.setAttribute("data-ready", "1");
  } catch (e) {
    fail(e && e.message ? e.message : e);
  }
})();
