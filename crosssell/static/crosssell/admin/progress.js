/* Polls a running build's progress (a small JSON admin view) and reloads the page when the
   build is no longer running. No library: the admin may be offline. */
(function () {
  "use strict";
  function poll(el) {
    var url = el.getAttribute("data-cs-progress");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        if (data.state !== "running") { window.location.reload(); return; }
        var bar = el.querySelector(".cs-progress-bar");
        if (bar) { bar.style.width = Math.round(data.percent) + "%"; }
        [["stage", data.stage || "starting"], ["percent", Math.round(data.percent)], ["rows", data.rows]]
          .forEach(function (pair) {
            var f = el.querySelector('[data-cs-field="' + pair[0] + '"]');
            if (f) { f.textContent = pair[1]; }
          });
        if (el.classList.contains("cs-progress-mini")) {
          el.textContent = (data.stage || "") + " " + Math.round(data.percent) + "%";
        }
        window.setTimeout(function () { poll(el); }, 1500);
      })
      .catch(function () { window.setTimeout(function () { poll(el); }, 5000); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-cs-progress]").forEach(function (el) {
      window.setTimeout(function () { poll(el); }, 1500);
    });
  });
})();
