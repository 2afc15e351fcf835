// The dashboard's browser script. Plain JavaScript, no build step; embedded
// into the program by src/dashboard/build_assets.ts. Everything that comes
// from the server (logs above all) is shown with textContent, never as HTML.
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);

  /** Creates an element: el("td", { className: "x" }, "text", child). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k in node) node[k] = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const fmt = {
    num(x, d = 0) {
      if (x === null || x === undefined || Number.isNaN(x)) return "–";
      return Number(x).toLocaleString("en-US", {
        maximumFractionDigits: d,
        minimumFractionDigits: d,
      });
    },
    ms(x) {
      if (x === null || x === undefined) return "–";
      return x >= 100 ? fmt.num(x, 0) : x >= 10 ? fmt.num(x, 1) : fmt.num(x, 2);
    },
    pct(x) {
      return x === null || x === undefined ? "–" : `${fmt.num(x * 100, 1)} %`;
    },
    bytes(n) {
      const u = ["B", "KiB", "MiB", "GiB", "TiB"];
      let i = 0;
      while (n >= 1024 && i < u.length - 1) {
        n /= 1024;
        i++;
      }
      return `${i ? n.toFixed(1) : n} ${u[i]}`;
    },
    duration(s) {
      if (s === null || s === undefined) return "–";
      const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
      return h ? `${h}h ${m}m ${sec}s` : m ? `${m}m ${sec}s` : `${sec}s`;
    },
    time(iso) {
      return iso ? new Date(iso).toLocaleString() : "–";
    },
  };

  // ── API ───────────────────────────────────────────────────────────────
  async function api(method, path, body) {
    const headers = { "x-dashboard": "1" };
    if (body !== undefined) headers["content-type"] = "application/json";
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      notice(`The dashboard does not answer: ${err.message}`);
      return { ok: false, status: 0, data: {} };
    }
    let data = {};
    try {
      data = await res.json();
    } catch {
      // not JSON
    }
    if (res.status === 401 && path !== "/api/login") showLogin();
    return { ok: res.ok, status: res.status, data };
  }

  function notice(text, level = "error") {
    const n = $("#notice");
    n.className = `notice ${level}`;
    n.textContent = text;
    n.hidden = !text;
    if (text) {
      setTimeout(() => {
        if (n.textContent === text) n.hidden = true;
      }, 8000);
    }
  }

  // ── pages ─────────────────────────────────────────────────────────────
  const PAGES = ["home", "config", "loadtest"];
  let loggedIn = true;

  function showPage() {
    const page = PAGES.includes(location.hash.slice(1)) ? location.hash.slice(1) : "home";
    for (const p of [...PAGES, "login"]) {
      $(`#page-${p}`).hidden = !loggedIn ? p !== "login" : p !== page;
    }
    for (const a of document.querySelectorAll("nav a")) {
      a.classList.toggle("active", a.dataset.page === page);
    }
    if (!loggedIn) return;
    if (page === "config") loadSettings();
    if (page === "loadtest") loadHistory();
    // Charts sized while hidden are 0 wide: size them now.
    requestAnimationFrame(resizeCharts);
  }

  function showLogin() {
    if (!loggedIn) return;
    loggedIn = false;
    showPage();
  }

  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await api("POST", "/api/login", { token: $("#login-token").value });
    if (!r.ok) {
      $("#login-error").textContent = r.data.error || "wrong token";
      return;
    }
    $("#login-error").textContent = "";
    loggedIn = true;
    start();
  });

  // ── charts (uPlot) ────────────────────────────────────────────────────
  const charts = new Map();
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"];

  function chartWidth(container) {
    return Math.max(200, container.clientWidth || container.parentElement.clientWidth || 400);
  }

  /** A chart with no points shows "waiting for data" instead of empty axes. */
  function markEmpty(id, data) {
    const container = document.getElementById(id);
    const empty = !data[0] || data[0].length === 0;
    container.classList.toggle("empty", empty);
  }

  /** Creates or replaces the uPlot chart in `id`. */
  function makeChart(id, series, data, opts = {}) {
    const container = document.getElementById(id);
    const old = charts.get(id);
    if (old) old.destroy();
    container.textContent = "";
    const u = new uPlot(
      {
        width: chartWidth(container),
        height: 220,
        scales: { x: { time: opts.time !== false }, ...(opts.scales || {}) },
        axes: opts.axes || [{}, { size: 60 }],
        series: [
          opts.xSeries || {},
          ...series.map((s, i) => {
            const stroke = s.color || COLORS[i % COLORS.length];
            return {
              stroke,
              width: 2,
              // uPlot shows points by itself where data is sparse (a short run); force them on
              // request, filled: a run shorter than a second is one point, and a hollow ring
              // of one point is easy to miss.
              points: opts.points === true ? { show: true, size: 7, fill: stroke } : { size: 7 },
              ...s,
            };
          }),
        ],
        legend: { live: opts.time !== false },
      },
      data,
      container,
    );
    container.append(el("div", { className: "chart-empty" }, "waiting for data"));
    charts.set(id, u);
    markEmpty(id, data);
    return u;
  }

  function resizeCharts() {
    for (const [id, u] of charts) {
      const c = document.getElementById(id);
      if (c && c.offsetParent !== null) u.setSize({ width: chartWidth(c), height: 220 });
    }
  }
  addEventListener("resize", resizeCharts);

  // ── home: status, stats, logs ─────────────────────────────────────────
  let status = null;
  let statusAt = 0;
  const live = { t: [], rps: [], p50: [], p99: [], hit: [], active: [] };

  function renderStatus(s) {
    status = s;
    statusAt = Date.now();
    const badge = $("#proxy-state");
    badge.textContent = s.state;
    badge.className = `badge ${s.state}`;
    $("#proxy-pid").textContent = s.pid ?? "–";
    $("#proxy-mode").textContent = s.mode ?? "–";
    $("#proxy-address").textContent = s.address ?? (s.state === "starting" ? "starting…" : "–");
    renderUptime();
    const busy = s.state === "starting" || s.state === "stopping";
    $("#btn-start").disabled = s.state !== "stopped";
    $("#btn-stop").disabled = s.state === "stopped" || s.state === "stopping";
    $("#btn-restart").disabled = s.state === "stopped" || busy;
    $("#restart-banner").hidden = !s.restart_needed;
    if (s.state !== "running") {
      // Numbers of a proxy that is not running would be stale: say so instead.
      const word = s.state === "stopped" ? "stopped" : "–";
      for (const tile of document.querySelectorAll(".tile .value")) {
        tile.textContent = word;
        tile.classList.toggle("idle", word === "stopped");
      }
      $("#backends-card").hidden = true;
    }
    const died = s.state === "stopped" && s.exit && !s.exit.expected;
    $("#exit-info").hidden = !died;
    if (died) {
      $("#exit-text").textContent = `The proxy stopped on its own at ${fmt.time(s.exit.at)} ` +
        `(exit code ${s.exit.code}${s.exit.signal ? `, ${s.exit.signal}` : ""}). Its last lines:`;
      const box = $("#exit-logs");
      box.textContent = s.last_logs.map(logText).join("\n");
      box.scrollTop = box.scrollHeight;
    }
  }

  function renderUptime() {
    if (!status || status.uptime_s === null) {
      $("#proxy-uptime").textContent = "–";
      return;
    }
    $("#proxy-uptime").textContent = fmt.duration(status.uptime_s + (Date.now() - statusAt) / 1000);
  }
  setInterval(renderUptime, 1000);

  function renderStats(latest, point) {
    if (!status || status.state !== "running") return; // a late poll after Stop
    for (const tile of document.querySelectorAll(".tile .value")) tile.classList.remove("idle");
    $("#t-rps").textContent = fmt.num(point.rps, 1);
    $("#t-hit").textContent = fmt.pct(latest.cache_hit_ratio);
    $("#t-active").textContent = fmt.num(latest.active_connections);
    const latency = latest.latency_recent_ms ?? latest.latency_ms;
    $("#t-p50").textContent = `${fmt.ms(latency?.p50)} ms`;
    $("#t-p99").textContent = `${fmt.ms(latency?.p99)} ms`;
    $("#t-total").textContent = fmt.num(latest.requests_total);
    $("#t-errors").textContent = fmt.num(latest.requests_error);
    $("#t-limited").textContent = fmt.num(latest.rate_limited_requests);
    renderBackends(latest.backends ?? backendsOfThreads(latest.threads));
  }

  /**
   * With SERVE_THREADS > 1 each thread balances on its own and /proxy-stats lists
   * them under `threads`: counters add up; latency is that of the thread that sent
   * the backend most requests (percentiles do not add); the newest health check wins.
   */
  function backendsOfThreads(threads) {
    const sections = (threads || []).map((t) => t.backends).filter((b) => b?.backends);
    if (sections.length === 0) return undefined;
    const merged = structuredClone(sections[0]);
    const busiest = new Map(merged.backends.map((b) => [b.url, b.requests]));
    for (const other of sections.slice(1)) {
      merged.retries += other.retries;
      merged.unavailable += other.unavailable;
      merged.failed += other.failed;
      for (const b of other.backends) {
        const m = merged.backends.find((x) => x.url === b.url);
        if (!m) continue;
        if (b.requests > busiest.get(b.url)) {
          busiest.set(b.url, b.requests);
          m.latency_ms = b.latency_ms;
        }
        for (const k of ["requests", "errors", "in_flight", "ejections"]) m[k] += b[k];
        if (b.state !== "up") m.state = b.state;
        if ((b.health.last_check ?? "") > (m.health.last_check ?? "")) m.health = b.health;
      }
    }
    return merged;
  }

  // ── backends (HAProxy stats page / Traefik style) ─────────────────────
  /** Gives each cell its column's name, shown beside the value when a narrow screen stacks rows. */
  function labelCells(table) {
    const names = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
    for (const row of table.querySelectorAll("tbody tr")) {
      [...row.children].forEach((td, i) => {
        if (names[i]) td.dataset.label = names[i];
      });
    }
  }

  /** Relative age of an ISO time, e.g. "3 s ago". */
  function ago(iso) {
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
  }

  /** The id the admin API knows a backend by: host:port. */
  function backendId(url) {
    const u = new URL(url);
    return `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
  }

  function renderBackends(section) {
    const card = $("#backends-card");
    const list = section && Array.isArray(section.backends) ? section.backends : [];
    card.hidden = list.length === 0;
    if (list.length === 0) return;
    const up = list.filter((b) => b.state === "up").length;
    $("#backends-summary").textContent = `${up} of ${list.length} up · ${section.strategy}` +
      (section.retries ? ` · ${fmt.num(section.retries)} retries` : "") +
      (section.unavailable ? ` · ${fmt.num(section.unavailable)} answered 503` : "");
    const body = $("#backends tbody");
    body.textContent = "";
    for (const b of list) {
      const h = b.health;
      const check = !h.enabled
        ? "checks off"
        : h.last_check
        ? `${ago(h.last_check)}: ${h.last_error || `status ${h.last_status}`}` +
          (h.last_duration_ms !== null ? ` (${fmt.ms(h.last_duration_ms)} ms)` : "")
        : "not yet";
      const action = b.state === "drained" ? "enable" : "drain";
      body.append(el(
        "tr",
        { className: `backend ${b.state}`, dataset: { url: b.url } },
        el("td", { className: "url" }, b.url),
        el("td", {}, el("span", { className: `badge ${b.state}` }, b.state)),
        el("td", {}, b.weight),
        el("td", {}, fmt.num(b.in_flight)),
        el("td", {}, fmt.num(b.requests)),
        el(
          "td",
          { title: `${b.consecutive_failures} in a row, ${b.ejections} ejections` },
          fmt.num(b.errors),
        ),
        el("td", {}, `${fmt.ms(b.latency_ms.p50)} / ${fmt.ms(b.latency_ms.p99)} ms`),
        el("td", { className: "check" }, check),
        el(
          "td",
          { className: "row-actions" },
          el("button", {
            type: "button",
            className: action === "drain" ? "secondary small" : "small",
            title: action === "drain"
              ? "no new requests; those in flight finish"
              : "take requests again",
            onclick: () => backendAction(b.url, action),
          }, action === "drain" ? "Drain" : "Enable"),
        ),
      ));
    }
    labelCells($("#backends"));
  }

  async function backendAction(url, action) {
    const r = await api(
      "POST",
      `/api/proxy/backends/${encodeURIComponent(backendId(url))}/${action}`,
    );
    if (!r.ok) {
      notice(r.data.error || `${action} failed (${r.status})`);
      return;
    }
    notice(`${url} ${action === "drain" ? "drained" : "enabled"}`, "info");
  }

  function pushPoint(p) {
    live.t.push(p.t);
    live.rps.push(p.rps);
    live.p50.push(p.p50_ms);
    live.p99.push(p.p99_ms);
    live.hit.push(p.hit_ratio * 100);
    live.active.push(p.active_connections);
    const max = 300;
    if (live.t.length > max) {
      for (const k of Object.keys(live)) live[k].splice(0, live[k].length - max);
    }
  }

  function drawLive() {
    const rps = charts.get("chart-rps");
    if (!rps) return initLiveCharts();
    const data = {
      "chart-rps": [live.t, live.rps],
      "chart-latency": [live.t, live.p50, live.p99],
      "chart-cache": [live.t, live.hit, live.active],
    };
    for (const [id, d] of Object.entries(data)) {
      charts.get(id).setData(d);
      markEmpty(id, d);
    }
  }

  function initLiveCharts() {
    makeChart("chart-rps", [{ label: "req/s", fill: "rgba(37,99,235,0.08)" }], [live.t, live.rps]);
    makeChart("chart-latency", [{ label: "p50 ms" }, { label: "p99 ms" }], [
      live.t,
      live.p50,
      live.p99,
    ]);
    makeChart(
      "chart-cache",
      [{ label: "hit ratio %", scale: "%" }, { label: "connections", scale: "n" }],
      [live.t, live.hit, live.active],
      {
        scales: { "%": { range: [0, 100] }, n: {} },
        axes: [{}, { scale: "%", size: 50 }, {
          scale: "n",
          side: 1,
          size: 50,
          grid: { show: false },
        }],
      },
    );
  }

  /** The proxy's lines carry their own time; the dashboard's own notes get one here. */
  function logText(l) {
    return l.stream === "dashboard" ? `${l.ts.slice(11, 19)} [dashboard] ${l.text}` : l.text;
  }

  const logsBox = $("#logs");
  const MAX_LOG_LINES = 1000;
  function appendLogs(lines) {
    const follow = $("#logs-follow").checked;
    const frag = document.createDocumentFragment();
    for (const l of lines) {
      const row = el("div", { className: `log ${l.stream}` }, logText(l));
      frag.append(row);
    }
    logsBox.append(frag);
    while (logsBox.childElementCount > MAX_LOG_LINES) logsBox.firstElementChild.remove();
    if (follow) logsBox.scrollTop = logsBox.scrollHeight;
  }

  async function proxyAction(action) {
    const r = await api("POST", `/api/proxy/${action}`);
    if (r.data.proxy) renderStatus(r.data.proxy);
    if (!r.ok) notice(r.data.error || `${action} failed`);
  }
  $("#btn-start").addEventListener("click", () => proxyAction("start"));
  $("#btn-stop").addEventListener("click", () => proxyAction("stop"));
  $("#btn-restart").addEventListener("click", () => proxyAction("restart"));
  $("#btn-restart-banner").addEventListener("click", () => proxyAction("restart"));

  // ── live events ───────────────────────────────────────────────────────
  let events = null;
  function connectEvents() {
    if (events) events.close();
    events = new EventSource("/api/events");
    const liveTag = $("#live");
    events.onopen = () => {
      liveTag.textContent = "live";
      liveTag.className = "live on";
    };
    events.onerror = () => {
      liveTag.textContent = "reconnecting…";
      liveTag.className = "live off";
      // A 401 closes the stream for good: ask who we are.
      if (events.readyState === EventSource.CLOSED) api("GET", "/api/status");
    };
    events.addEventListener("status", (e) => {
      const s = JSON.parse(e.data);
      const wasRunning = status && status.state !== "stopped";
      renderStatus(s);
      if (!wasRunning && s.state === "starting") {
        for (const k of Object.keys(live)) live[k].length = 0;
        drawLive();
      }
    });
    events.addEventListener("logs", (e) => {
      logsBox.textContent = "";
      appendLogs(JSON.parse(e.data));
    });
    events.addEventListener("logs-append", (e) => {
      const { lines, skipped } = JSON.parse(e.data);
      appendLogs(lines);
      if (skipped > 0) {
        appendLogs([{
          ts: new Date().toISOString(),
          stream: "dashboard",
          text: `… ${skipped} more lines came too fast to show`,
        }]);
      }
    });
    events.addEventListener("stats", (e) => {
      const { latest, point } = JSON.parse(e.data);
      renderStats(latest, point);
      pushPoint(point);
      drawLive();
    });
    events.addEventListener("notice", (e) => notice(JSON.parse(e.data).text));
    events.addEventListener("loadtest-started", (e) => onLoadtestStarted(JSON.parse(e.data)));
    events.addEventListener("loadtest-progress", (e) => onLoadtestProgress(JSON.parse(e.data)));
    events.addEventListener("loadtest-done", (e) => onLoadtestDone(JSON.parse(e.data)));
  }

  // ── configuration ─────────────────────────────────────────────────────
  let settings = [];
  async function loadSettings() {
    const r = await api("GET", "/api/settings");
    if (!r.ok) return;
    settings = r.data.settings;
    $("#config-envfile").textContent = r.data.env_file;
    renderSettings();
  }

  function inputFor(s) {
    const id = `set-${s.env}`;
    const value = s.value ?? "";
    if (s.allowed && !/comma-separated/.test(s.kind)) {
      const select = el(
        "select",
        { id, name: s.env },
        el("option", { value: "" }, `default (${s.default})`),
        ...s.allowed.map((a) => el("option", { value: a }, a)),
      );
      if (value && !s.allowed.includes(value)) select.append(el("option", { value }, value));
      select.value = value;
      return select;
    }
    return el("input", {
      id,
      name: s.env,
      type: s.secret ? "password" : "text",
      value,
      placeholder: s.default === "" ? "(empty)" : s.default,
      autocomplete: "off",
      spellcheck: false,
    });
  }

  function renderSettings(errors = {}) {
    const form = $("#config-form");
    form.textContent = "";
    const groups = new Map();
    for (const s of settings) {
      if (!groups.has(s.group)) groups.set(s.group, []);
      groups.get(s.group).push(s);
    }
    for (const [group, list] of groups) {
      const fs = el("fieldset", {}, el("legend", {}, group));
      for (const s of list) {
        const input = inputFor(s);
        const error = el(
          "p",
          { className: "field-error", id: `err-${s.env}` },
          errors[s.env] || "",
        );
        const row = el(
          "div",
          { className: `setting${errors[s.env] ? " invalid" : ""}`, dataset: { env: s.env } },
          el(
            "div",
            {},
            el("label", { className: "name", htmlFor: input.id }, s.env),
            el(
              "div",
              { className: "meta" },
              `${s.flag ? `--${s.flag} · ` : ""}${s.kind} · default ${
                s.default === "" ? "(empty)" : s.default
              }`,
            ),
          ),
          el("div", {}, input, error),
          el("p", { className: "desc" }, s.description),
        );
        input.addEventListener("input", () => {
          row.classList.toggle("changed", input.value !== (s.value ?? ""));
        });
        fs.append(row);
      }
      form.append(fs);
    }
    // Errors for keys the form does not show (e.g. rules across settings).
    const stray = Object.entries(errors).filter(([k]) => !settings.some((s) => s.env === k));
    if (stray.length) {
      form.prepend(
        el("p", { className: "banner error" }, stray.map(([k, v]) => `${k}: ${v}`).join("; ")),
      );
    }
    applyFilter();
  }

  function applyFilter() {
    const q = $("#config-filter").value.trim().toLowerCase();
    for (const fs of document.querySelectorAll("#config-form fieldset")) {
      let shown = 0;
      for (const row of fs.querySelectorAll(".setting")) {
        const hit = !q || row.textContent.toLowerCase().includes(q);
        row.classList.toggle("filtered-out", !hit);
        if (hit) shown++;
      }
      fs.classList.toggle("filtered-out", shown === 0);
    }
  }
  $("#config-filter").addEventListener("input", applyFilter);

  $("#config-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const values = {};
    for (const s of settings) {
      const input = document.getElementById(`set-${s.env}`);
      if (input && input.value !== (s.value ?? "")) values[s.env] = input.value;
    }
    const result = $("#config-result");
    if (Object.keys(values).length === 0) {
      result.textContent = "Nothing changed.";
      result.className = "banner";
      result.hidden = false;
      return;
    }
    const r = await api("PUT", "/api/settings", { values });
    if (r.status === 422) {
      // Keep what the user typed; mark the refused fields.
      for (const s of settings) {
        const input = document.getElementById(`set-${s.env}`);
        const row = input.closest(".setting");
        const err = r.data.errors[s.env] || "";
        row.classList.toggle("invalid", Boolean(err));
        document.getElementById(`err-${s.env}`).textContent = err;
      }
      const first = Object.keys(r.data.errors)[0];
      document.getElementById(`set-${first}`)?.focus();
      result.textContent = `Not saved: ${Object.keys(r.data.errors).length} value(s) refused.`;
      result.className = "banner error";
      result.hidden = false;
      return;
    }
    if (!r.ok) {
      result.textContent = r.data.error || "Saving failed.";
      result.className = "banner error";
      result.hidden = false;
      return;
    }
    result.textContent = r.data.restart_needed
      ? "Saved. The proxy is running with the old settings: restart it on the Home page to apply them."
      : "Saved.";
    result.className = r.data.restart_needed ? "banner" : "banner ok";
    result.hidden = false;
    if (r.data.restart_needed) {
      result.append(
        " ",
        el("button", { type: "button", onclick: () => proxyAction("restart") }, "Restart now"),
      );
    }
    await loadSettings();
  });

  // ── load testing ──────────────────────────────────────────────────────
  let history = [];
  const selected = new Set();
  let currentRun = null;

  $("#lt-mode").addEventListener("change", () => {
    const byTime = $("#lt-mode").value === "duration";
    $("#lt-requests-field").hidden = byTime;
    $("#lt-duration-field").hidden = !byTime;
  });

  $("#lt-use-proxy").addEventListener("click", () => {
    if (!status || !status.address) {
      notice("The proxy is not running: start it on the Home page first.");
      return;
    }
    const u = new URL(status.address);
    if (u.hostname === "0.0.0.0") u.hostname = "127.0.0.1";
    if (u.hostname === "[::]") u.hostname = "[::1]";
    if (status.mode === "reverse") {
      // A gateway is the target itself: requests go to it, not through it.
      $("#lt-url").value = `${u.origin}/`;
      $("#lt-proxy").value = "";
      notice("The proxy runs as a reverse proxy: it is now the URL to load.", "info");
    } else {
      $("#lt-proxy").value = u.origin;
    }
  });

  function setFormErrors(errors) {
    for (const p of document.querySelectorAll("#lt-form .field-error")) {
      p.textContent = errors[p.dataset.for] || "";
    }
  }

  $("#lt-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = Object.fromEntries(new FormData($("#lt-form")).entries());
    setFormErrors({});
    const r = await api("POST", "/api/loadtests", form);
    if (!r.ok) {
      setFormErrors(r.data.errors || { _: r.data.error || "could not start" });
      return;
    }
    onLoadtestStarted({ id: r.data.id });
  });

  $("#lt-stop").addEventListener("click", () => api("POST", "/api/loadtests/stop"));

  // A short run can finish (SSE) before its POST answers: never reopen a finished run.
  const finishedRuns = new Set();

  function onLoadtestStarted(summary) {
    if (finishedRuns.has(summary.id)) return;
    currentRun = summary.id;
    $("#lt-run").disabled = true;
    $("#lt-stop").disabled = false;
    $("#lt-progress").hidden = false;
    $("#lt-bar").style.width = "0%";
    $("#lt-progress-text").textContent = "starting…";
  }

  function onLoadtestProgress({ id, progress }) {
    if (finishedRuns.has(id)) return;
    if (currentRun !== id) onLoadtestStarted({ id });
    if (!progress) return;
    $("#lt-bar").style.width = `${Math.round(progress.fraction * 100)}%`;
    $("#lt-progress-text").textContent = `${Math.round(progress.fraction * 100)} % · ` +
      `${fmt.num(progress.requests)} responses · ${fmt.num(progress.current_rps, 0)} req/s · ` +
      `${fmt.num(progress.errors)} errors · ${progress.elapsed_s.toFixed(1)} s`;
  }

  async function onLoadtestDone(summary) {
    finishedRuns.add(summary.id);
    currentRun = null;
    $("#lt-run").disabled = false;
    $("#lt-stop").disabled = true;
    $("#lt-bar").style.width = "100%";
    $("#lt-progress-text").textContent = `finished: ${summary.state}`;
    await loadHistory();
    await showRun(summary.id);
  }

  async function fetchRun(id) {
    const r = await api("GET", `/api/loadtests/${encodeURIComponent(id)}`);
    return r.ok ? r.data.run : null;
  }

  /** x position for a percentile: HdrHistogram-style, each "nine" one step. */
  function nines(p) {
    return p >= 100 ? 4.3 : -Math.log10(1 - p / 100);
  }

  function latencySplits() {
    return [0, 50, 90, 99, 99.9, 99.99].map(nines);
  }

  function latencyAxisValues(u, splits) {
    // On a narrow chart "min" and "p50" are a few pixels apart: keep p50.
    const names = {
      0: u.width < 500 ? "" : "min",
      50: "p50",
      90: "p90",
      99: "p99",
      99.9: "p99.9",
      99.99: "p99.99",
    };
    return splits.map((x) => {
      for (const [p, name] of Object.entries(names)) {
        if (Math.abs(nines(Number(p)) - x) < 1e-9) return name;
      }
      return "";
    });
  }

  function latencyChartOpts() {
    return {
      time: false,
      points: true,
      scales: { x: { time: false, range: [0, 4.3] } },
      axes: [{ splits: latencySplits, values: latencyAxisValues }, { size: 60 }],
      xSeries: {
        label: "percentile",
        value: (_u, x) =>
          x === null ? "–" : x >= 4.3 ? "max" : `p${fmt.num(100 - 100 / 10 ** x, 3)}`,
      },
    };
  }

  /** Whole seconds on the x axis of per-second charts. */
  const SECOND_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];
  function secondsRange(_u, min, max) {
    // Half a second of room on each side, so a run of one or two seconds is not a point on an edge.
    return [(min ?? 1) - 0.5, (max ?? 1) + 0.5];
  }

  /** Rates and latencies are drawn from zero, so one run's level is not blown up. */
  function fromZero(_u, _min, max) {
    return [0, max > 0 ? max * 1.1 : 1];
  }

  /** The p99 line in the lower half of a shared chart, below the rate line. */
  function fromZeroLow(_u, _min, max) {
    return [0, max > 0 ? max * 2 : 1];
  }

  function renderResult(run) {
    const r = run.report;
    $("#lt-result").hidden = false;
    $("#lt-result-title").textContent = `Result${
      run.label ? ` — ${run.label}` : ""
    } (${run.state})`;
    const warnings = $("#lt-warnings");
    warnings.textContent = "";
    if (!r) {
      warnings.append(el("li", {}, run.error || "no report"));
      return;
    }
    for (const w of r.warnings) warnings.append(el("li", {}, w));
    const summary = $("#lt-summary");
    summary.textContent = "";
    const rows = [
      ["Target", `${r.method} ${r.url}`],
      ["Through proxy", r.proxy || "no (direct)"],
      ["Connections", `${r.concurrency}${r.rate ? ` at ${r.rate} req/s` : ""}`],
      ["Duration", `${r.duration_s.toFixed(2)} s`],
      ["Responses", fmt.num(r.requests)],
      [
        "Errors",
        `${fmt.num(r.errors_total)}${
          Object.keys(r.errors).length
            ? ` (${Object.entries(r.errors).map(([k, v]) => `${k} ${v}`).join(", ")})`
            : ""
        }`,
      ],
      ["Requests/s", fmt.num(r.rps, 1)],
      ["Latency min / mean", `${fmt.ms(r.latency_ms.min)} / ${fmt.ms(r.latency_ms.mean)} ms`],
      [
        "p50 / p90 / p99",
        `${fmt.ms(r.latency_ms.p50)} / ${fmt.ms(r.latency_ms.p90)} / ${
          fmt.ms(r.latency_ms.p99)
        } ms`,
      ],
      ["p99.9 / max", `${fmt.ms(r.latency_ms.p999)} / ${fmt.ms(r.latency_ms.max)} ms`],
      ["Received", `${fmt.bytes(r.bytes_received)} (${fmt.bytes(r.throughput_bytes_per_s)}/s)`],
      [
        "Rate limited",
        r.rate_limited ? `yes (${fmt.num(r.rate_limited_responses)} responses)` : "no",
      ],
      ["Load generator CPU", cpuText(r.loadgen_cpu)],
    ];
    for (const [k, v] of rows) summary.append(el("tr", {}, el("th", {}, k), el("td", {}, v)));
    const st = $("#lt-status");
    st.textContent = "";
    st.append(el("tr", {}, el("th", {}, "Status"), el("th", {}, "Responses")));
    for (const [code, n] of Object.entries(r.status)) {
      st.append(el("tr", {}, el("td", {}, code), el("td", {}, fmt.num(n))));
    }
    for (const [kind, n] of Object.entries(r.errors)) {
      st.append(el("tr", {}, el("td", {}, `error: ${kind}`), el("td", {}, fmt.num(n))));
    }
    const pts = r.latency_percentiles || [];
    makeChart("chart-lt-latency", [{ label: "latency ms", fill: "rgba(37,99,235,0.08)" }], [
      pts.map((p) => nines(p.p)),
      pts.map((p) => p.ms),
    ], latencyChartOpts());
    const tl = r.timeline;
    makeChart(
      "chart-lt-timeline",
      [{ label: "req/s", scale: "rps" }, { label: "p99 ms", scale: "ms" }],
      [tl.map((p) => p.second + 1), tl.map((p) => p.rps), tl.map((p) => p.p99_ms)],
      {
        time: false,
        points: tl.length < 3,
        scales: {
          x: { time: false, range: secondsRange },
          rps: { range: fromZero },
          ms: { range: fromZeroLow },
        },
        axes: [{ label: "second", incrs: SECOND_INCRS }, { scale: "rps", size: 60 }, {
          scale: "ms",
          side: 1,
          size: 60,
          grid: { show: false },
        }],
        xSeries: { label: "second" },
      },
    );
  }

  /** The load generator's own CPU, so its ceiling is not mistaken for the target's. */
  function cpuText(cpu) {
    if (!cpu) return "–";
    const note = cpu.core_percent >= 85 ? " — likely the limit of this run" : "";
    return `${fmt.num(cpu.core_percent, 0)} % of one core${
      cpu.threads > 1 ? ` (${cpu.threads} threads)` : ""
    }${note}`;
  }

  async function showRun(id) {
    const run = await fetchRun(id);
    if (run) renderResult(run);
  }

  async function loadHistory() {
    const r = await api("GET", "/api/loadtests");
    if (!r.ok) return;
    history = r.data.runs;
    if (r.data.current && currentRun !== r.data.current) onLoadtestStarted({ id: r.data.current });
    for (const id of [...selected]) if (!history.some((h) => h.id === id)) selected.delete(id);
    renderHistory();
  }

  function renderHistory() {
    const body = $("#lt-history tbody");
    body.textContent = "";
    if (history.length === 0) {
      body.append(el("tr", {}, el("td", { colSpan: 10, className: "hint" }, "No runs yet.")));
    }
    for (const h of history) {
      const box = el("input", {
        type: "checkbox",
        checked: selected.has(h.id),
        disabled: h.state === "running",
        onchange: () => {
          if (box.checked) selected.add(h.id);
          else selected.delete(h.id);
          while (selected.size > 2) selected.delete(selected.values().next().value);
          renderHistory();
        },
      });
      box.setAttribute("aria-label", `select run ${h.label || h.started_at}`);
      body.append(
        el(
          "tr",
          { className: selected.has(h.id) ? "selected" : "", dataset: { id: h.id } },
          el("td", {}, box),
          el(
            "td",
            {},
            el(
              "button",
              { type: "button", className: "link", onclick: () => showRun(h.id) },
              fmt.time(h.started_at),
            ),
          ),
          el("td", {}, h.label || "–"),
          el(
            "td",
            { className: "url", title: h.url },
            `${h.via_proxy ? "via proxy · " : ""}${h.url}`,
          ),
          el("td", {}, h.concurrency),
          el("td", {}, fmt.num(h.requests)),
          el("td", {}, fmt.num(h.errors)),
          el("td", {}, fmt.num(h.rps, 1)),
          el("td", {}, fmt.ms(h.p99_ms)),
          el(
            "td",
            { className: "row-actions" },
            h.state === "running" ? "running" : el("button", {
              type: "button",
              className: "link",
              title: "fill the form with this run's settings",
              onclick: () => fillForm(h.id),
            }, "again"),
            " ",
            h.state === "running" ? null : el("button", {
              type: "button",
              className: "link danger",
              onclick: async () => {
                await api("DELETE", `/api/loadtests/${encodeURIComponent(h.id)}`);
                selected.delete(h.id);
                loadHistory();
              },
            }, "delete"),
          ),
        ),
      );
    }
    labelCells($("#lt-history"));
    $("#lt-compare-btn").disabled = selected.size !== 2;
  }

  /** Puts a past run's settings back in the form, to run it again after a change. */
  async function fillForm(id) {
    const run = await fetchRun(id);
    if (!run) return;
    const o = run.options;
    const byTime = o.duration !== undefined && o.duration !== null;
    $("#lt-url").value = o.url;
    $("#lt-proxy").value = o.proxy || "";
    $("#lt-mode").value = byTime ? "duration" : "requests";
    $("#lt-mode").dispatchEvent(new Event("change"));
    if (byTime) $("#lt-duration").value = o.duration;
    else $("#lt-requests").value = o.requests ?? 1000;
    $("#lt-concurrency").value = o.concurrency ?? 10;
    $("#lt-rate").value = o.rate ?? "";
    $("#lt-method").value = o.method || "GET";
    $("#lt-headers").value = (o.headers || []).map(([k, v]) => `${k}: ${v}`).join("\n");
    $("#lt-body").value = o.body || "";
    $("#lt-label").value = run.label;
    setFormErrors({});
    if (JSON.stringify(o).includes("***")) {
      notice("Passwords and credentials are not kept: put them back in before running.", "info");
    }
    $("#lt-form").scrollIntoView({ behavior: "smooth" });
  }

  $("#lt-compare-btn").addEventListener("click", async () => {
    const [a, b] = await Promise.all([...selected].map(fetchRun));
    if (!a?.report || !b?.report) {
      notice("Both runs need a report to compare.");
      return;
    }
    renderCompare(a, b);
  });

  function renderCompare(a, b) {
    $("#lt-compare").hidden = false;
    const t = $("#lt-compare-table");
    t.textContent = "";
    const name = (r) => r.label || fmt.time(r.started_at);
    t.append(
      el(
        "tr",
        {},
        el("th", {}, ""),
        el("th", {}, `A: ${name(a)}`),
        el("th", {}, `B: ${name(b)}`),
        el("th", {}, "B vs A"),
      ),
    );
    const ra = a.report, rb = b.report;
    // [label, value a, value b, formatter, higher is better]
    const rows = [
      ["URL", ra.url, rb.url],
      ["Through proxy", ra.proxy || "no", rb.proxy || "no"],
      ["Connections", ra.concurrency, rb.concurrency],
      ["Responses", ra.requests, rb.requests, fmt.num, true],
      ["Errors", ra.errors_total, rb.errors_total, fmt.num, false],
      ["Requests/s", ra.rps, rb.rps, (x) => fmt.num(x, 1), true],
      ["Latency mean (ms)", ra.latency_ms.mean, rb.latency_ms.mean, fmt.ms, false],
      ["p50 (ms)", ra.latency_ms.p50, rb.latency_ms.p50, fmt.ms, false],
      ["p90 (ms)", ra.latency_ms.p90, rb.latency_ms.p90, fmt.ms, false],
      ["p99 (ms)", ra.latency_ms.p99, rb.latency_ms.p99, fmt.ms, false],
      ["p99.9 (ms)", ra.latency_ms.p999, rb.latency_ms.p999, fmt.ms, false],
      ["max (ms)", ra.latency_ms.max, rb.latency_ms.max, fmt.ms, false],
      ["Rate limited", ra.rate_limited ? "yes" : "no", rb.rate_limited ? "yes" : "no"],
      [
        "Load generator CPU (% of a core)",
        ra.loadgen_cpu?.core_percent,
        rb.loadgen_cpu?.core_percent,
        (x) => fmt.num(x, 0),
      ],
    ];
    const cmpWarnings = $("#lt-compare-warnings");
    cmpWarnings.textContent = "";
    for (const [tag, run] of [["A", a], ["B", b]]) {
      const cpu = run.report.loadgen_cpu;
      if (cpu && cpu.core_percent >= 85) {
        cmpWarnings.append(el(
          "li",
          {},
          `${tag}: the load generator used ${fmt.num(cpu.core_percent, 0)} % of its CPU core, ` +
            "so this run shows the load generator's limit rather than the target's.",
        ));
      }
    }
    for (const [label, va, vb, f, higherBetter] of rows) {
      let delta = "";
      let cls = "";
      if (f && typeof va === "number" && typeof vb === "number" && va !== 0) {
        const d = (vb - va) / va;
        delta = `${d >= 0 ? "+" : ""}${fmt.num(d * 100, 1)} %`;
        // Only where more or less is better (not for the load generator's CPU, say).
        if (Math.abs(d) > 0.02 && higherBetter !== undefined) {
          cls = (d > 0) === higherBetter ? "better" : "worse";
        }
      }
      t.append(
        el(
          "tr",
          {},
          el("th", {}, label),
          el("td", {}, f ? f(va) : String(va)),
          el("td", {}, f ? f(vb) : String(vb)),
          el("td", { className: cls }, delta),
        ),
      );
    }
    // Both percentile curves on one x axis (the same percentiles in both reports).
    const pa = ra.latency_percentiles || [], pb = rb.latency_percentiles || [];
    makeChart("chart-cmp-latency", [{ label: `A ${name(a)}` }, { label: `B ${name(b)}` }], [
      pa.map((p) => nines(p.p)),
      pa.map((p) => p.ms),
      pb.map((p) => p.ms),
    ], latencyChartOpts());
    const len = Math.max(ra.timeline.length, rb.timeline.length);
    const xs = Array.from({ length: len }, (_, i) => i + 1);
    makeChart("chart-cmp-rps", [{ label: `A ${name(a)}` }, { label: `B ${name(b)}` }], [
      xs,
      xs.map((_, i) => ra.timeline[i]?.rps ?? null),
      xs.map((_, i) => rb.timeline[i]?.rps ?? null),
    ], {
      time: false,
      points: len < 3,
      scales: { x: { time: false, range: secondsRange }, y: { range: fromZero } },
      axes: [{ label: "second", incrs: SECOND_INCRS }, { size: 60 }],
      xSeries: { label: "second" },
    });
    $("#lt-compare").scrollIntoView({ behavior: "smooth" });
  }

  // ── start ─────────────────────────────────────────────────────────────
  async function start() {
    const r = await api("GET", "/api/status");
    if (r.status === 401) return;
    loggedIn = true;
    renderStatus(r.data.proxy);
    $("#proxy-envfile").textContent = r.data.env_file;
    const stats = await api("GET", "/api/stats");
    if (stats.ok) {
      for (const p of stats.data.series) pushPoint(p);
      if (stats.data.latest && stats.data.series.length) {
        renderStats(stats.data.latest, stats.data.series[stats.data.series.length - 1]);
      }
    }
    connectEvents();
    showPage();
    initLiveCharts();
  }

  addEventListener("hashchange", showPage);
  start();
})();
