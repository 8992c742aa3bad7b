/* sipwatch dashboard: draw the Plotly figures embedded as JSON, refresh the live parts.
 * Every N seconds (body data-refresh) the page is fetched again; elements marked data-live
 * and figures whose JSON changed are replaced in place, so there is no full reload and the
 * reader keeps their scroll position. The HTML comes from this server, escaped there. */
(function () {
  "use strict";
  var CONFIG = { displaylogo: false, responsive: true };

  function figureOf(script) {
    try { return JSON.parse(script.textContent); } catch (e) { return null; }
  }

  function draw(div, script, update) {
    var fig = figureOf(script);
    if (!fig || typeof Plotly === "undefined") { return; }
    fig.layout = fig.layout || {};
    fig.layout.autosize = true;
    (update ? Plotly.react : Plotly.newPlot)(div, fig.data || [], fig.layout, CONFIG);
  }

  function drawAll() {
    document.querySelectorAll("div.plot[data-figure]").forEach(function (div) {
      var script = document.getElementById(div.getAttribute("data-figure"));
      if (script) { draw(div, script, false); }
    });
  }

  function stamp(text) {
    var el = document.getElementById("updated");
    if (el) { el.textContent = text; }
  }

  function apply(doc) {
    doc.querySelectorAll("[data-live][id]").forEach(function (fresh) {
      var old = document.getElementById(fresh.id);
      if (old && old.innerHTML !== fresh.innerHTML) { old.innerHTML = fresh.innerHTML; }
    });
    doc.querySelectorAll("script.figure[id]").forEach(function (fresh) {
      var old = document.getElementById(fresh.id);
      if (!old || old.textContent === fresh.textContent) { return; }
      old.textContent = fresh.textContent;
      var div = document.querySelector('div.plot[data-figure="' + fresh.id + '"]');
      if (div) { draw(div, old, true); }
    });
  }

  function refresh() {
    if (document.hidden) { return; }
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.redirected && new URL(r.url).pathname === "/login") {
          window.location.assign(r.url);  // the session ended: log in again
          return null;
        }
        return r.text().then(function (text) { return { ok: r.ok, text: text }; });
      })
      .then(function (got) {
        if (!got) { return; }
        apply(new DOMParser().parseFromString(got.text, "text/html"));
        stamp((got.ok ? "updated " : "error, kept ") + new Date().toLocaleTimeString());
      })
      .catch(function () { stamp("offline since " + new Date().toLocaleTimeString()); });
  }

  function start() {
    drawAll();
    var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
    if (seconds > 0) {
      stamp("updated " + new Date().toLocaleTimeString());
      window.setInterval(refresh, seconds * 1000);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
