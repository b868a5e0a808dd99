// Draws the host tables of a hive report from the JSON blob above: filters (read from and kept in
// the address's #fragment, e.g. #verdict=failed&group=web), the timeline of waves, the host x
// bulletin matrix. Every value is set with textContent or an attribute, never parsed as HTML.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("data").textContent);
  var STEP = 200;
  var limit = STEP;
  var KINDS = ["scan", "stage", "verify_hash", "install", "qchain", "reboot", "verify", "cleanup", "health"];
  var WORDS = { fixed: "patched in this run", installed: "installed", missing: "missing", failed: "not patched: the install failed or did not take", warning: "warning", note: "note", na: "not applicable" };
  var MARK = { fixed: "\u2713", installed: "\u00b7", missing: "\u2717", failed: "!", warning: "w", note: "n", na: "" };
  var $ = function (id) { return document.getElementById(id); };
  var fv = $("f-verdict"), fg = $("f-group"), fw = $("f-wave"), fh = $("f-host");

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function options(sel, pairs) {
    pairs.forEach(function (p) {
      var o = el("option", null, p[1]);
      o.value = p[0];
      sel.appendChild(o);
    });
    if (pairs.length === 0) sel.parentNode.hidden = true;
  }
  function ms(n) {
    if (n >= 60000) return Math.floor(n / 60000) + " min " + Math.round((n % 60000) / 1000) + " s";
    return (n / 1000).toFixed(1) + " s";
  }

  var verdicts = [];
  D.hosts.forEach(function (h) { if (verdicts.indexOf(h.v) < 0) verdicts.push(h.v); });
  options(fv, verdicts.map(function (v) { return [v, v]; }));
  options(fg, D.groups.map(function (g, i) { return [String(i), g]; }));
  options(fw, D.waves.map(function (w, i) { return [String(i), w.name]; }));

  function readHash() {
    var q = new URLSearchParams(location.hash.slice(1));
    fv.value = q.get("verdict") || "";
    var g = D.groups.indexOf(q.get("group"));
    fg.value = g < 0 ? "" : String(g);
    var w = -1;
    D.waves.forEach(function (x, i) { if (x.name === q.get("wave")) w = i; });
    fw.value = w < 0 ? "" : String(w);
    fh.value = q.get("host") || "";
  }
  function writeHash() {
    var q = new URLSearchParams();
    if (fv.value) q.set("verdict", fv.value);
    if (fg.value) q.set("group", D.groups[+fg.value]);
    if (fw.value) q.set("wave", D.waves[+fw.value].name);
    if (fh.value) q.set("host", fh.value);
    history.replaceState(null, "", "#" + q.toString());
  }
  function matches(h) {
    if (fv.value && h.v !== fv.value) return false;
    if (fg.value && (h.g || []).indexOf(+fg.value) < 0) return false;
    if (fw.value && h.w !== +fw.value) return false;
    if (fh.value && h.n.toLowerCase().indexOf(fh.value.toLowerCase()) < 0) return false;
    return true;
  }

  function drawBulletins() {
    var box = $("bulletins");
    box.textContent = "";
    if (D.bulletins.length === 0) return;
    var bad = D.bulletins.map(function () { return [0, 0]; });
    D.hosts.forEach(function (h) {
      (h.m || []).forEach(function (c) {
        if (c[1] === "missing" || c[1] === "failed") bad[c[0]][0]++;
        if (c[1] === "fixed") bad[c[0]][1]++;
      });
    });
    var t = el("table", "bulletins");
    var hr = el("tr");
    ["Bulletin", "Severity", "CVEs", "Title", "Hosts missing it", "Patched in this run"].forEach(function (x) { hr.appendChild(el("th", null, x)); });
    t.appendChild(el("thead")).appendChild(hr);
    var tb = t.appendChild(el("tbody"));
    D.bulletins.forEach(function (b, i) {
      var tr = tb.appendChild(el("tr"));
      tr.dataset.bulletin = b.id;
      tr.appendChild(el("td", "host", b.id));
      tr.appendChild(el("td", "sev-" + b.severity, b.severity || "not rated"));
      tr.appendChild(el("td", null, b.cves.join(", ")));
      tr.appendChild(el("td", null, b.title));
      tr.appendChild(el("td", "missing-count", bad[i][0]));
      tr.appendChild(el("td", "fixed-count", bad[i][1]));
    });
    box.appendChild(t);
  }

  function drawTimeline(hosts) {
    var box = $("timeline");
    box.textContent = "";
    var span = D.t1 - D.t0;
    if (!(span > 0) || D.waves.length === 0) return;
    box.appendChild(el("h3", null, "Timeline (" + ms(span) + " from start to last record; each bar to scale)"));
    var legend = box.appendChild(el("div", "legend"));
    KINDS.concat(["other"]).forEach(function (k) {
      var s = legend.appendChild(el("span"));
      s.appendChild(el("i", "k-" + k));
      s.appendChild(document.createTextNode(k === "stage" ? "copy" : k.replace("_", " ")));
    });
    var inWave = hosts.slice().sort(function (a, b) {
      return (a.w === undefined ? -1 : a.w) - (b.w === undefined ? -1 : b.w);
    });
    var last = null;
    inWave.forEach(function (h) {
      if (h.w !== last) {
        last = h.w;
        var w = D.waves[h.w];
        var head = box.appendChild(el("div", "wave", w ? "Wave " + (h.w + 1) + ": " + w.name + " " : "Not in a wave "));
        if (w) head.appendChild(el("span", "state", "(" + w.state + ")"));
      }
      var row = box.appendChild(el("div", "tl-row"));
      row.dataset.host = h.n;
      row.appendChild(el("span", "host", h.n)).title = h.n + ": " + h.v;
      var track = row.appendChild(el("div", "track"));
      (h.s || []).forEach(function (s) {
        var kind = KINDS.indexOf(s[1]) < 0 ? "other" : s[1];
        var seg = track.appendChild(el("span", "seg k-" + kind + " " + s[4]));
        seg.style.left = (100 * s[2] / span) + "%";
        seg.style.width = Math.max(100 * s[3] / span, 0.2) + "%";
        seg.title = h.n + ": " + D.x[s[0]] + ", " + ms(s[3]) + " \u2014 " + D.x[s[5]];
        seg.dataset.ev = "1";
      });
    });
  }

  function drawMatrix(hosts) {
    var box = $("matrix");
    box.textContent = "";
    var t = el("table", "matrix");
    var hr = el("tr");
    ["Host", "Verdict", "Why", "OS"].forEach(function (x) { hr.appendChild(el("th", null, x)); });
    D.bulletins.forEach(function (b) {
      var th = hr.appendChild(el("th", "b", b.id));
      th.title = b.title + (b.cves.length ? " (" + b.cves.join(", ") + ")" : "");
    });
    t.appendChild(el("thead")).appendChild(hr);
    var tb = t.appendChild(el("tbody"));
    hosts.forEach(function (h) {
      var tr = tb.appendChild(el("tr"));
      tr.dataset.host = h.n;
      tr.dataset.verdict = h.v;
      tr.appendChild(el("td", "host", h.n));
      tr.appendChild(el("td", "verdict v-" + h.c, h.v));
      tr.appendChild(el("td", "reason", h.r || ""));
      tr.appendChild(el("td", "os", h.o || ""));
      var cells = {};
      (h.m || []).forEach(function (c) { cells[c[0]] = c; });
      D.bulletins.forEach(function (b, i) {
        var c = cells[i];
        var td = tr.appendChild(el("td", "cell " + (c ? c[1] : "na"), c ? MARK[c[1]] : ""));
        td.dataset.b = b.id;
        if (c) {
          td.dataset.state = c[1];
          td.title = h.n + " \u00b7 " + b.id + ": " + WORDS[c[1]] + "\n" + D.x[c[2]];
          td.dataset.ev = "1";
        }
      });
    });
    box.appendChild(t);
  }

  function draw() {
    var hosts = D.hosts.filter(matches);
    var shown = $("shown");
    shown.dataset.match = String(hosts.length);
    shown.textContent = hosts.length + " of " + D.hosts.length + " hosts" +
      (hosts.length > limit ? ", the first " + limit + " drawn" : "");
    drawTimeline(hosts.slice(0, limit));
    drawMatrix(hosts.slice(0, limit));
    $("more").hidden = hosts.length <= limit;
  }
  function refilter() {
    limit = STEP;
    writeHash();
    draw();
  }

  [fv, fg, fw].forEach(function (s) { s.addEventListener("change", refilter); });
  fh.addEventListener("input", refilter);
  window.addEventListener("hashchange", function () { readHash(); limit = STEP; draw(); });
  $("more").addEventListener("click", function () { limit += STEP * 5; draw(); });
  document.body.addEventListener("click", function (e) {
    var t = e.target.closest ? e.target.closest("[data-ev]") : null;
    if (t) $("evidence").textContent = t.title;
  });
  readHash();
  drawBulletins();
  draw();
})();
