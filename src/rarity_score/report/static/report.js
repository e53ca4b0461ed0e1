// The per-image table of the rarity-score report: plain JavaScript, no libraries.
//
// Each set's rows live in data/set-<slug>.js, which assigns window.RARITY_REPORT_DATA[slug]
// (a <script> works from file://, where fetch() of local files is blocked). A set's file is
// loaded only when its tab is opened, and only one page of rows is in the DOM at a time, so a
// set of 100,000 images keeps the page light. Names are always put into the page as text
// (textContent), never parsed as HTML.
(function () {
  "use strict";

  var panel = document.getElementById("table-panel");
  if (!panel) return;

  var DATA = (window.RARITY_REPORT_DATA = window.RARITY_REPORT_DATA || {});
  var pageSize = Math.max(1, parseInt(panel.getAttribute("data-page-size"), 10) || 500);
  var table = document.getElementById("rows-table");
  var headRow = table.tHead.rows[0];
  var body = table.tBodies[0];
  var info = document.getElementById("page-info");
  var prev = document.getElementById("page-prev");
  var next = document.getElementById("page-next");
  var nameInput = document.getElementById("filter-name");
  var manifoldSelect = document.getElementById("filter-manifold");
  var minInput = document.getElementById("filter-min");
  var maxInput = document.getElementById("filter-max");
  var tabs = Array.prototype.slice.call(panel.querySelectorAll(".tab"));

  // Column key -> heading, kind (how it sorts and shows). The row number and the name lead every
  // table; each set's data file lists its other columns (set.table, from the metrics'
  // declarations): float, int, flag, or ref (the name of the row that column "from" points at).
  var LEADING = [
    { key: "index", label: "#", kind: "int" },
    { key: "name", label: "name", kind: "text" }
  ];

  var state = { slug: null, set: null, columns: [], order: [], sortKey: null, sortDir: 0, page: 0 };
  var loading = {};

  function loadScript(file, done, failed) {
    if (!file) { done(); return; }
    if (loading[file] === true) { done(); return; }
    if (loading[file]) { loading[file].push([done, failed]); return; }
    loading[file] = [[done, failed]];
    var script = document.createElement("script");
    script.src = file;
    script.onload = function () {
      var waiting = loading[file];
      loading[file] = true;
      waiting.forEach(function (pair) { pair[0](); });
    };
    script.onerror = function () {
      var waiting = loading[file];
      delete loading[file];
      waiting.forEach(function (pair) { pair[1](file); });
    };
    document.head.appendChild(script);
  }

  function openTab(tab) {
    tabs.forEach(function (t) { t.setAttribute("aria-selected", t === tab ? "true" : "false"); });
    var slug = tab.getAttribute("data-slug");
    state.slug = slug;
    info.textContent = "Loading " + (tab.getAttribute("data-n") || "") + " rows\u2026";
    var failed = function (file) {
      info.textContent = "Could not load " + file + " (is the report folder complete?)";
    };
    loadScript(tab.getAttribute("data-ref-file"), function () {
      loadScript(tab.getAttribute("data-file"), function () {
        if (state.slug !== slug) return; // another tab was opened meanwhile
        showSet(DATA[slug]);
      }, failed);
    }, failed);
  }

  function showSet(set) {
    if (!set) { info.textContent = "This set's rows are missing from its data file."; return; }
    state.set = set;
    var refNames = set.reference === "self" ? set.columns.name
      : set.reference === "real" ? (window.RARITY_REPORT_REAL_NAMES || null) : null;
    state.refNames = refNames;
    state.columns = LEADING.concat((set.table || []).filter(function (c) {
      return !!set.columns[c.kind === "ref" ? c.from : c.key];
    }));
    state.sortKey = null;
    state.sortDir = 0;
    buildHead();
    applyFilter();
  }

  function buildHead() {
    while (headRow.firstChild) headRow.removeChild(headRow.firstChild);
    state.columns.forEach(function (column) {
      var th = document.createElement("th");
      th.scope = "col";
      th.setAttribute("data-key", column.key);
      th.setAttribute("aria-sort", "none");
      if (column.kind === "text" || column.kind === "ref") th.className = "text";
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = column.label;
      button.addEventListener("click", function () { sortBy(column); });
      th.appendChild(button);
      headRow.appendChild(th);
    });
  }

  function value(column, row) {
    var cols = state.set.columns;
    if (column.key === "index") return row;
    if (column.kind === "ref") {
      var index = cols[column.from][row];
      return index >= 0 ? index : null;
    }
    return cols[column.key][row];
  }

  function refName(index) {
    if (index === null || index === undefined || index < 0) return null;
    var names = state.refNames;
    var name = names && names[index];
    return name ? name : "row " + index;
  }

  function numberOrNull(input) {
    var text = input.value.trim();
    if (text === "") return null;
    var x = Number(text);
    return isFinite(x) ? x : null;
  }

  function applyFilter() {
    var set = state.set;
    if (!set) return;
    var n = set.n;
    var names = set.columns.name;
    var inside = set.columns.in_manifold;
    var rarity = set.columns.rarity;
    var needle = nameInput.value.trim().toLowerCase();
    var which = manifoldSelect.value;
    var low = numberOrNull(minInput);
    var high = numberOrNull(maxInput);
    var order = [];
    for (var row = 0; row < n; row++) {
      if (which === "in" && !inside[row]) continue;
      if (which === "out" && inside[row]) continue;
      if (low !== null || high !== null) {
        var r = rarity ? rarity[row] : null;
        if (r === null || r === undefined) continue;
        if (low !== null && r < low) continue;
        if (high !== null && r > high) continue;
      }
      if (needle && String(names[row]).toLowerCase().indexOf(needle) < 0) continue;
      order.push(row);
    }
    state.order = order;
    sortRows();
    state.page = 0;
    render();
  }

  function sortBy(column) {
    if (state.sortKey === column.key) {
      state.sortDir = -state.sortDir;
    } else {
      state.sortKey = column.key;
      // Numbers: largest first, as one usually wants the rarest; text: A to Z.
      state.sortDir = column.kind === "text" || column.kind === "ref" ? 1 : -1;
    }
    headRow.querySelectorAll("th").forEach(function (th) {
      var key = th.getAttribute("data-key");
      th.setAttribute("aria-sort", key !== state.sortKey ? "none"
        : state.sortDir > 0 ? "ascending" : "descending");
    });
    sortRows();
    state.page = 0;
    render();
  }

  function sortRows() {
    if (!state.sortKey) return;
    var column = state.columns.filter(function (c) { return c.key === state.sortKey; })[0];
    if (!column) return;
    var dir = state.sortDir;
    var keys = new Array(state.set.n);
    // Keys computed once per row: sorting 100,000 rows then costs only comparisons.
    state.order.forEach(function (row) {
      var v = value(column, row);
      if (column.kind === "ref") v = refName(v);
      if (column.kind === "text" || column.kind === "ref") v = v === null ? null : String(v).toLowerCase();
      keys[row] = v;
    });
    state.order.sort(function (a, b) {
      var x = keys[a], y = keys[b];
      var xMissing = x === null || x === undefined || (typeof x === "number" && isNaN(x));
      var yMissing = y === null || y === undefined || (typeof y === "number" && isNaN(y));
      if (xMissing || yMissing) return xMissing === yMissing ? a - b : xMissing ? 1 : -1;
      if (x < y) return -dir;
      if (x > y) return dir;
      return a - b; // ties keep row order, so the result does not depend on the browser
    });
  }

  function format(column, v) {
    if (v === null || v === undefined) return "\u2014";
    if (column.kind === "flag") return v ? "yes" : "no";
    if (column.kind === "float") {
      if (v === Infinity) return "\u221e";
      return Number(v.toPrecision(6)).toString();
    }
    if (column.kind === "int") return String(v);
    return String(v);
  }

  function render() {
    var total = state.order.length;
    var pages = Math.max(1, Math.ceil(total / pageSize));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    var start = state.page * pageSize;
    var stop = Math.min(total, start + pageSize);
    var fragment = document.createDocumentFragment();
    for (var i = start; i < stop; i++) {
      var row = state.order[i];
      var tr = document.createElement("tr");
      tr.setAttribute("data-row", String(row));
      state.columns.forEach(function (column) {
        var td = document.createElement("td");
        var v = value(column, row);
        if (column.kind === "ref") {
          var name = refName(v);
          td.textContent = name === null ? "\u2014" : name;
          td.className = "text";
          if (name !== null) td.title = name;
        } else if (column.kind === "text") {
          td.textContent = String(v);
          td.title = String(v);
          td.className = "text";
        } else {
          td.textContent = format(column, v);
          if (v === null) td.className = "na";
          if (column.kind === "flag") td.className = v ? "flag-in" : "flag-out";
        }
        tr.appendChild(td);
      });
      fragment.appendChild(tr);
    }
    while (body.firstChild) body.removeChild(body.firstChild);
    body.appendChild(fragment);
    var n = state.set.n;
    var text = total === 0 ? "No rows match."
      : "Rows " + (start + 1).toLocaleString("en") + "\u2013" + stop.toLocaleString("en")
        + " of " + total.toLocaleString("en");
    if (total !== n) text += " (filtered from " + n.toLocaleString("en") + ")";
    text += " \u00b7 page " + (state.page + 1) + " of " + pages;
    info.textContent = text;
    prev.disabled = state.page <= 0;
    next.disabled = state.page >= pages - 1;
  }

  var timer = null;
  function filterSoon() {
    // Typing in a 100,000-row set refilters once the user pauses, not on every key.
    if (timer) clearTimeout(timer);
    timer = setTimeout(function () { timer = null; applyFilter(); }, 150);
  }

  document.getElementById("table-controls").addEventListener("submit", function (event) {
    event.preventDefault();
    applyFilter();
  });
  nameInput.addEventListener("input", filterSoon);
  minInput.addEventListener("input", filterSoon);
  maxInput.addEventListener("input", filterSoon);
  manifoldSelect.addEventListener("change", applyFilter);
  prev.addEventListener("click", function () { state.page -= 1; render(); });
  next.addEventListener("click", function () { state.page += 1; render(); });
  tabs.forEach(function (tab) { tab.addEventListener("click", function () { openTab(tab); }); });
  if (tabs.length) openTab(tabs[0]);
  else info.textContent = "No sets.";
})();
