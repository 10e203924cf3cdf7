// atlaslink: live pages. Server-sent events tell an open page that something changed; the page
// then fetches itself again and swaps the sections marked data-live. A section the person is
// typing in is left alone and marked, so no input is lost. Works without it: reload the page.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  function say(text) { if (status) { status.textContent = text; } }

  // Forms the person has started to fill in.
  document.addEventListener("input", function (e) {
    var form = e.target && e.target.form;
    if (form) { form.dataset.dirty = "1"; }
  });

  function busy(section) {
    var active = document.activeElement;
    if (active && section.contains(active) && active.matches("input, select, textarea")) {
      return true;
    }
    return Array.prototype.some.call(section.querySelectorAll("form"), function (f) {
      return f.dataset.dirty === "1";
    });
  }

  var pending = false;
  var running = false;
  function refresh() {
    if (running) { pending = true; return; }
    running = true;
    fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin",
      headers: { "Accept": "text/html" }
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var held = 0;
      document.querySelectorAll("[data-live]").forEach(function (old) {
        var fresh = old.id && doc.getElementById(old.id);
        if (!fresh) { return; }
        if (busy(old)) { old.classList.add("changed-elsewhere"); held += 1; return; }
        old.replaceWith(fresh);
      });
      var now = new Date();
      say("Updated " + now.toISOString().substring(11, 19) + " UTC" +
          (held ? " · a section you are editing changed: save or reload to see it" : ""));
    }).catch(function () {
      say("Could not refresh the page; reload it.");
    }).then(function () {
      running = false;
      if (pending) { pending = false; refresh(); }
    });
  }

  var live = document.body.dataset.liveUrl;
  if (live && window.EventSource) {
    var timer = null;
    var source = new EventSource(live);
    source.addEventListener("open", function () { say("Live: changes appear without reloading."); });
    source.addEventListener("error", function () {
      // A closed stream is not retried (e.g. the session ended): say so, plainly.
      say(source.readyState === EventSource.CLOSED
        ? "Live updates stopped: reload the page (you may have to log in again)."
        : "Connection lost; reconnecting…");
    });
    source.addEventListener("timeline", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 100);
    });
  }

  var badge = document.getElementById("notif-count");
  var link = badge && badge.closest("[data-live-url]");
  if (badge && link && window.EventSource) {
    var inbox = new EventSource(link.dataset.liveUrl);
    var seen = {};
    inbox.addEventListener("notification", function (e) {
      // A reconnect may repeat a signal: count each notification once.
      if (seen[e.lastEventId]) { return; }
      seen[e.lastEventId] = true;
      var n = parseInt(badge.textContent, 10) || 0;
      badge.textContent = String(n + 1);
      badge.setAttribute("aria-label", (n + 1) + " unread");
      badge.classList.remove("none");
      try { if (JSON.parse(e.data).urgent) { badge.classList.add("urgent"); } } catch (err) { /* ignore */ }
    });
  }

  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();
