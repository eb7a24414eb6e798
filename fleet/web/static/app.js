// Progressive enhancement only: every page works without this file.
// - The commissioning page listens to its event stream and swaps in the regions the server
//   rendered (localised, escaped), and enables "mark as installed" when the server says so.
// - The report's print button.
"use strict";
(function () {
  function live(root) {
    var url = root.getAttribute("data-events");
    if (!url || !window.EventSource) { return; }
    var note = document.getElementById("live-note");
    var source = new EventSource(url, { withCredentials: true });
    var leaving = false;
    document.addEventListener("submit", function () { leaving = true; source.close(); });
    source.addEventListener("open", function () { if (note) { note.hidden = false; } });
    source.addEventListener("status", function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      var regions = data.regions || {};
      Object.keys(regions).forEach(function (id) {
        var el = document.getElementById(id);
        if (el && el.innerHTML !== regions[id]) { el.innerHTML = regions[id]; }
      });
      var button = document.getElementById("complete");
      if (button) { button.disabled = !data.can_complete; }
      root.setAttribute("data-status", data.status || "");
      root.setAttribute("data-updates", String(Number(root.getAttribute("data-updates") || "0") + 1));
    });
    source.addEventListener("end", function (ev) {
      source.close();
      var data = {};
      try { data = JSON.parse(ev.data); } catch (e) { /* keep the defaults */ }
      if (data.reason === "unauthenticated") {
        window.location.href = "/web/login?next=" + encodeURIComponent(window.location.pathname);
      } else if (data.reason === "status" && !leaving) {
        window.location.reload();
      }
    });
    source.addEventListener("error", function () { if (note) { note.hidden = true; } });
  }
  function ready() {
    var roots = document.querySelectorAll("[data-events]");
    for (var i = 0; i < roots.length; i++) { live(roots[i]); }
    var prints = document.querySelectorAll("[data-print]");
    for (var j = 0; j < prints.length; j++) {
      prints[j].hidden = false;
      prints[j].addEventListener("click", function () { window.print(); });
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", ready); } else { ready(); }
}());
