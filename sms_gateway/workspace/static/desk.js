// The disposition desk's keys: j/k move, 1-3 dispose to a guess, u undoes; the undo countdown.
(function () {
  "use strict";

  function rows() { return Array.from(document.querySelectorAll("article.desk-row")); }
  function current() { return document.querySelector("article.desk-row.current") || rows()[0]; }

  function move(step) {
    var all = rows();
    if (!all.length) { return; }
    var index = all.indexOf(current());
    var next = all[Math.max(0, Math.min(all.length - 1, index + step))];
    all.forEach(function (r) { r.classList.remove("current"); });
    next.classList.add("current");
    next.focus();
    next.scrollIntoView({block: "nearest"});
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    if (event.key === "j") { event.preventDefault(); move(1); }
    else if (event.key === "k") { event.preventDefault(); move(-1); }
    else if (/^[1-3]$/.test(event.key)) {
      var row = current();
      var button = row && row.querySelector('button.guess[data-key="' + event.key + '"]');
      if (button) { event.preventDefault(); button.click(); }
    } else if (event.key === "u") {
      var undo = document.querySelector("#undo-form button:not([disabled])");
      if (undo) { event.preventDefault(); undo.click(); }
    }
  });

  document.addEventListener("focusin", function (event) {
    var row = event.target.closest && event.target.closest("article.desk-row");
    if (row) { rows().forEach(function (r) { r.classList.toggle("current", r === row); }); }
  });

  // The undo button counts down and disappears when the window closes (the server refuses after it anyway).
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("undo-form");
    if (!form) { return; }
    var end = Date.now() + parseInt(form.dataset.leftMs, 10);
    var out = form.querySelector(".undo-left");
    var timer = setInterval(function () {
      var left = Math.ceil((end - Date.now()) / 1000);
      if (left <= 0) {
        clearInterval(timer);
        form.remove();
        return;
      }
      out.textContent = left + " s";
    }, 250);
  });
})();
