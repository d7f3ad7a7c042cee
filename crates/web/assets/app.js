// Rapport UI: progressive enhancement. Every page works without this file; it adds the search
// typeahead, keyboard shortcuts, select-all, extra form rows, the live segment count and
// in-place loading of older timeline events. Text from the server is only ever set with
// textContent; HTML is only taken from Rapport's own rendered fragments.
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function debounce(fn, ms) {
    var t = null;
    return function () {
      var args = arguments, self = this;
      clearTimeout(t);
      t = setTimeout(function () { fn.apply(self, args); }, ms);
    };
  }
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  // ---- Global search typeahead ------------------------------------------------------------
  function setupSearch() {
    var input = $("#search");
    var list = $("#search-results");
    if (!input || !list) return;
    var active = -1;
    var items = [];
    var seq = 0;

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }
    function highlight(i) {
      items.forEach(function (li, j) { li.setAttribute("aria-selected", j === i ? "true" : "false"); });
      active = i;
      if (i >= 0 && items[i]) {
        input.setAttribute("aria-activedescendant", items[i].id);
        items[i].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }
    function show(results, q) {
      list.textContent = "";
      items = [];
      if (!results.length) {
        var none = document.createElement("li");
        none.className = "none";
        none.textContent = "Nothing matches “" + q + "”. Press Enter for all results.";
        list.appendChild(none);
      }
      results.forEach(function (r, i) {
        var li = document.createElement("li");
        li.id = "search-result-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.setAttribute("data-testid", "search-result");
        var a = document.createElement("a");
        a.href = r.href;
        a.tabIndex = -1;
        var kind = document.createElement("span");
        kind.className = "kind";
        kind.textContent = r.kind;
        var title = document.createElement("span");
        title.textContent = r.title;
        a.appendChild(kind);
        a.appendChild(title);
        if (r.detail) {
          var small = document.createElement("small");
          small.textContent = r.detail;
          a.appendChild(small);
        }
        li.appendChild(a);
        list.appendChild(li);
        items.push(li);
      });
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      active = -1;
    }
    var lookup = debounce(function () {
      var q = input.value.trim();
      if (q.length < 2) { close(); return; }
      var mine = ++seq;
      fetch("/ui/search?q=" + encodeURIComponent(q), { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { results: [] }; })
        .then(function (data) { if (mine === seq && input.value.trim() === q) show(data.results || [], q); })
        .catch(function () { close(); });
    }, 150);
    input.addEventListener("input", lookup);
    input.addEventListener("keydown", function (e) {
      if (list.hidden) return;
      if (e.key === "ArrowDown") { e.preventDefault(); highlight(Math.min(active + 1, items.length - 1)); }
      else if (e.key === "ArrowUp") { e.preventDefault(); highlight(Math.max(active - 1, -1)); }
      else if (e.key === "Enter" && active >= 0 && items[active]) { e.preventDefault(); window.location.href = items[active].querySelector("a").href; }
      else if (e.key === "Escape") { close(); }
    });
    input.addEventListener("blur", function () { setTimeout(close, 200); });
  }

  // ---- Keyboard shortcuts -------------------------------------------------------------------
  function setupShortcuts() {
    var dialog = $("#shortcuts");
    var pendingG = false;
    var gTimer = null;
    document.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
      if (dialog && dialog.open) return;
      var k = e.key;
      if (pendingG) {
        pendingG = false;
        clearTimeout(gTimer);
        var to = { c: "/contacts", s: "/segments", t: "/", o: "/companies", w: "/workflows", m: "/campaigns", h: "/" }[k];
        if (to) { e.preventDefault(); window.location.href = to; }
        return;
      }
      if (k === "/") {
        var s = $("#search");
        if (s) { e.preventDefault(); s.focus(); s.select(); }
      } else if (k === "g") {
        pendingG = true;
        gTimer = setTimeout(function () { pendingG = false; }, 1500);
      } else if (k === "n") {
        if ($("#sign-out")) { e.preventDefault(); window.location.href = "/contacts/new"; }
      } else if (k === "?") {
        if (dialog && dialog.showModal) { e.preventDefault(); dialog.showModal(); }
      }
    });
  }

  // ---- Contact list: select all, count --------------------------------------------------------
  function setupSelection() {
    var all = $("#select-all");
    var boxes = $all('#contacts-table input[name="ids"]');
    var count = $("#selected-count");
    if (!boxes.length) return;
    function update() {
      var n = boxes.filter(function (b) { return b.checked; }).length;
      if (count) count.textContent = n ? "(" + n + " selected)" : "";
      if (all) {
        all.checked = n === boxes.length;
        all.indeterminate = n > 0 && n < boxes.length;
      }
    }
    if (all) all.addEventListener("change", function () { boxes.forEach(function (b) { b.checked = all.checked; }); update(); });
    boxes.forEach(function (b) { b.addEventListener("change", update); });
    update();
  }

  // ---- Contact form: more email and phone rows ---------------------------------------------------
  function setupRows() {
    $all("[data-add-row]").forEach(function (button) {
      var set = document.getElementById(button.getAttribute("data-add-row"));
      if (!set) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        var rows = $all("[data-row]", set);
        var last = rows[rows.length - 1];
        if (!last) return;
        var index = rows.length;
        var list = set.getAttribute("data-list");
        var row = last.cloneNode(true);
        row.classList.remove("invalid");
        $all(".error", row).forEach(function (el) { el.remove(); });
        $all("input", row).forEach(function (input) {
          if (input.type === "radio") {
            input.checked = false;
            input.value = String(index);
          } else {
            input.value = "";
            input.removeAttribute("aria-invalid");
            input.removeAttribute("aria-describedby");
            input.name = input.name.replace(/\[\d+\]/, "[" + index + "]");
            input.id = input.id.replace(/-\d+-/, "-" + index + "-");
          }
        });
        $all("label[for]", row).forEach(function (label) {
          label.htmlFor = label.htmlFor.replace(/-\d+-/, "-" + index + "-");
        });
        var first = $("label[for]", row);
        if (first) first.textContent = (list === "emails" ? "Email " : "Phone ") + (index + 1);
        last.parentNode.insertBefore(row, button);
        var focus = $("input", row);
        if (focus) focus.focus();
      });
    });
  }

  // ---- Segment editor: live count -----------------------------------------------------------------
  function setupPreview() {
    var area = $("textarea[data-preview]");
    var out = $("#preview");
    if (!area || !out) return;
    var url = area.getAttribute("data-preview");
    var seq = 0;
    var run = debounce(function () {
      var text = area.value;
      if (!text.trim()) { out.textContent = ""; out.classList.remove("bad"); return; }
      var mine = ++seq;
      out.textContent = "Counting…";
      fetch(url + "?filter=" + encodeURIComponent(text), { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (mine !== seq) return;
          if (data.error) {
            var e = data.error;
            var where = e.line ? "Line " + e.line + ", column " + e.column + ": " : "";
            var message = String(e.message || "").replace(/^line \d+, column \d+: /, "");
            var expected = e.expected && message.indexOf(e.expected) < 0 ? " (expected " + e.expected + ")" : "";
            out.textContent = where + message + expected;
            out.classList.add("bad");
          } else if (data.count !== null && data.count !== undefined) {
            var names = (data.sample || []).map(function (c) { return c.name; }).join(", ");
            out.textContent = (data.count_text || data.count) + (data.count === 1 ? " person matches" : " people match") + " right now" + (names ? " — e.g. " + names : "") + ".";
            out.classList.remove("bad");
          }
        })
        .catch(function () { if (mine === seq) out.textContent = ""; });
    }, 300);
    area.addEventListener("input", run);
    run();
  }

  // ---- Timeline: older events in place -------------------------------------------------------------
  function setupTimeline() {
    var list = $("#timeline");
    if (!list) return;
    list.addEventListener("click", function (e) {
      var link = e.target.closest ? e.target.closest("#timeline-more") : null;
      if (!link) return;
      e.preventDefault();
      var item = link.closest("li");
      link.textContent = "Loading…";
      fetch(link.href + (link.href.indexOf("?") >= 0 ? "&" : "?") + "fragment=1", { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.text(); })
        .then(function (html) {
          var t = document.createElement("template");
          t.innerHTML = html;
          var firstNew = t.content.querySelector("li");
          item.replaceWith(t.content);
          if (firstNew) {
            firstNew.setAttribute("tabindex", "-1");
            firstNew.focus({ preventScroll: true });
          }
        })
        .catch(function () { window.location.href = link.href; });
    });
  }

  function setupErrors() {
    var summary = $("#form-errors");
    if (summary) summary.focus();
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupSearch();
    setupShortcuts();
    setupSelection();
    setupRows();
    setupPreview();
    setupTimeline();
    setupErrors();
  });
})();
