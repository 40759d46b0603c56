// The workspace's few behaviours: CSRF header on htmx requests, keyboard keys in the inbox,
// the live SMS segment counter (the same rules as sms_gateway/gsm.py), canned answers.
(function () {
  "use strict";

  // Every htmx request carries the CSRF token, like the forms' hidden field.
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { event.detail.headers["X-CSRFToken"] = meta.content; }
  });

  // --------------------------------------------------------------- SMS length (gsm.py's measure)
  // Python's str.split() whitespace, so the count sees the text the server will send.
  var WHITESPACE = /[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

  function normalize(text) {
    return text.split(WHITESPACE).filter(function (w) { return w.length > 0; }).join(" ");
  }

  function measure(text, basic, extended) {
    var chars = Array.from(text);  // code points, as Python iterates a str
    var gsm = chars.every(function (c) { return basic.has(c) || extended.has(c); });
    var units = 0;
    chars.forEach(function (c) {
      if (gsm) { units += extended.has(c) ? 2 : 1; } else { units += c.codePointAt(0) > 0xFFFF ? 2 : 1; }
    });
    var single = gsm ? 160 : 70, part = gsm ? 153 : 67;
    var segments = units <= single ? 1 : Math.ceil(units / part);
    return {encoding: gsm ? "gsm7" : "ucs2", units: units, segments: segments};
  }
  window.workspaceSms = {measure: measure, normalize: normalize};

  function setUpCounter() {
    var area = document.getElementById("answer-text");
    var out = document.getElementById("counter");
    if (!area || !out) { return; }
    var basic = new Set(Array.from(area.dataset.gsmBasic + "\n\r"));
    var extended = new Set(Array.from(area.dataset.gsmExtended + "\f"));
    var header = area.dataset.header;
    var max = parseInt(area.dataset.max, 10);
    var lang = document.documentElement.lang;
    var form = area.form;
    function update() {
      var body = normalize(area.value);
      var shorten = form.querySelector('input[name="mode"]:checked').value === "shorten";
      var m = measure(header + " " + body, basic, extended);
      var enc = m.encoding === "gsm7" ? "GSM-7" : "UCS-2 (Unicode)";
      var text;
      if (shorten) {
        text = lang === "en" ? "Shortened: 1 SMS with the start of the answer and a pointer"
                             : "Ringkas: 1 SMS berisi awal jawaban dan penunjuk";
      } else if (lang === "en") {
        text = m.units + " " + (m.encoding === "gsm7" ? "characters" : "units") + " · " + enc + " · " +
               m.segments + " SMS (cost " + m.segments + " SMS, at most " + max + ")";
      } else {
        text = m.units + " " + (m.encoding === "gsm7" ? "karakter" : "unit") + " · " + enc + " · " +
               m.segments + " SMS (biaya " + m.segments + " SMS, maks. " + max + ")";
      }
      out.textContent = text;
      out.dataset.segments = String(m.segments);
      out.dataset.encoding = m.encoding;
      out.classList.toggle("over", !shorten && m.segments > max);
    }
    area.addEventListener("input", update);
    form.addEventListener("change", update);
    document.querySelectorAll("[data-canned]").forEach(function (button) {
      button.addEventListener("click", function () {
        area.value = button.dataset.canned;
        update();
        area.focus();
      });
    });
    update();
  }

  // --------------------------------------------------------------- inbox keys: j/k, Enter, x, /
  function rows() { return Array.from(document.querySelectorAll("tr.report-row")); }

  function move(step) {
    var all = rows();
    if (!all.length) { return; }
    var index = all.findIndex(function (r) { return r.classList.contains("current"); });
    var next = all[Math.max(0, Math.min(all.length - 1, index + step))];
    if (index < 0) { next = all[0]; }
    all.forEach(function (r) { r.classList.remove("current"); });
    next.classList.add("current");
    var link = next.querySelector("a.open");
    if (link) { link.focus(); }
  }

  function countSelected() {
    var out = document.getElementById("selected-count");
    if (!out) { return; }
    var n = document.querySelectorAll('#bulk-form input[name="n"]:checked').length;
    out.textContent = n ? "(" + n + ")" : "";
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    if (event.key === "/") {
      var search = document.getElementById("search");
      if (search) { event.preventDefault(); search.focus(); search.select(); }
    } else if (event.key === "j" && rows().length) {
      event.preventDefault(); move(1);
    } else if (event.key === "k" && rows().length) {
      event.preventDefault(); move(-1);
    } else if (event.key === "x") {
      var current = document.querySelector("tr.report-row.current input[name=n]");
      if (current) { current.checked = !current.checked; countSelected(); }
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.name === "n") { countSelected(); }
  });
  document.addEventListener("focusin", function (event) {
    var row = event.target.closest && event.target.closest("tr.report-row");
    if (row) { rows().forEach(function (r) { r.classList.toggle("current", r === row); }); }
  });

  document.addEventListener("DOMContentLoaded", function () { setUpCounter(); countSelected(); });
})();
