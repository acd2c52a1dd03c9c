// Squidie dashboard: reload a page when what it shows has changed.
// The page names a JSON URL (data-poll) and what it showed (data-stamp); while the
// auto-refresh box is ticked and the tab is visible, the URL is polled and the page
// reloads when the stamp differs. Pages work the same without this script.
(function () {
  "use strict";
  var body = document.body;
  // "Approved." belongs to the click that led here, not to a later reload.
  var here = new URL(window.location.href);
  if (here.searchParams.has("done")) {
    here.searchParams.delete("done");
    window.history.replaceState(null, "", here.pathname + here.search + here.hash);
  }
  var url = body.dataset.poll;
  var box = document.getElementById("auto-refresh");
  if (!url || !box) { return; }
  var KEY = "squidie.dashboard.autoRefresh";
  box.checked = window.localStorage.getItem(KEY) !== "off";
  box.addEventListener("change", function () {
    window.localStorage.setItem(KEY, box.checked ? "on" : "off");
  });
  var every = Number(body.dataset.every) || 3000;
  function poll() {
    if (!box.checked || document.visibilityState !== "visible") { return; }
    var typing = document.activeElement;  // never throw away what someone is typing
    if (typing && /^(INPUT|SELECT|TEXTAREA)$/.test(typing.tagName) && typing !== box) { return; }
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data && data.stamp !== undefined && data.stamp !== body.dataset.stamp) {
          window.location.reload();
        }
      })
      .catch(function () { /* the server is away; try again next time */ });
  }
  window.setInterval(poll, every);
})();
