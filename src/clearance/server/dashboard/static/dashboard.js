// Progressive enhancement only: every page works without this file.
// 1. Expiry countdowns: an approval whose deadline passes is greyed out and the list reloads,
//    so the server (which expires it as a DENY) shows the current pending set.
// 2. The live feed refreshes its rows every few seconds with the same filters.
(function () {
  "use strict";

  function format(seconds) {
    var m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function startCountdowns() {
    var clocks = Array.prototype.slice.call(document.querySelectorAll("time.countdown"));
    if (!clocks.length) { return; }
    var started = Date.now();
    var reloading = false;
    function tick() {
      var elapsed = Math.floor((Date.now() - started) / 1000);
      clocks.forEach(function (el) {
        var left = Math.max(0, parseInt(el.dataset.seconds, 10) - elapsed);
        el.textContent = format(left);
        var card = el.closest(".approval");
        if (left <= 60 && card) { card.classList.add("expiring"); }
        if (left === 0 && card && !card.classList.contains("expired")) {
          card.classList.add("expired");
          if (!reloading && location.pathname === "/approvals") {
            reloading = true;
            setTimeout(function () { location.reload(); }, 1000);
          }
        }
      });
    }
    tick();
    setInterval(tick, 1000);
  }

  function startFeed() {
    var body = document.getElementById("feed-rows");
    if (!body) { return; }
    setInterval(function () {
      fetch(body.dataset.refresh, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { body.innerHTML = html; } })
        .catch(function () { /* keep the rows shown; the next tick retries */ });
    }, 3000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    startCountdowns();
    startFeed();
  });
})();
