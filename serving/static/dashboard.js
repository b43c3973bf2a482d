// The dashboard: reads the REST API with the token from localStorage; no libraries, no build step.
"use strict";

const COLORS = ["#3b82f6", "#e8710a", "#137333", "#c5221f", "#8430ce", "#0f9d9a", "#b06000", "#5b6573"];
let token = localStorage.getItem("flywheel-token") || "";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function api(path, options = {}) {
  const headers = Object.assign({ "Content-Type": "application/json" }, options.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.reason || resp.statusText);
  return body;
}

function status(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = bad ? "bad" : "muted";
}

function ago(iso) {
  if (!iso) return "never";
  const s = (Date.now() - Date.parse(iso)) / 1000;
  return s < 90 ? `${Math.round(s)} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : new Date(iso).toLocaleString();
}

function fill(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows);
}

function renderRobots(robots) {
  fill("robots", robots.map((r) => {
    const health = r.stale ? el("span", { class: "bad" }, "stale") :
      el("span", { class: r.health && r.health.ok === false ? "bad" : "ok" }, r.health && r.health.ok === false ? "unhealthy" : "ok");
    return el("tr", { "data-robot": r.robot_id }, el("td", {}, r.robot_id), el("td", { class: "running" }, el("code", {}, r.running_version || "—")),
      el("td", {}, el("code", {}, r.desired_version || "—")), el("td", {}, health), el("td", {}, ago(r.last_seen)));
  }));
}

// A candidate the flywheel's judge evaluated: its success against its parent's at the deployment temperature (what
// the robot runs), then at the sampling temperature; other policies: their metrics as they are.
function judged(m) {
  const pct = (v) => `${Math.round(100 * v)}%`;
  const side = (prefix) => ["sim", "imagined"].filter((w) => m[`${w}_${prefix}success`] !== undefined)
    .map((w) => `${w} ${pct(m[`${w}_${prefix}success`])} vs parent ${pct(m[`parent_${w}_${prefix}success`])}`).join(", ");
  const at = side("");
  const sampling = side("sampling_");
  return `at T=${m.deploy_temperature} (deployed): ${at}` + (sampling ? ` · at T=${m.sampling_temperature} (sampling): ${sampling}` : "");
}

function renderPolicies(policies) {
  fill("policies", policies.map((p) => {
    const m = p.metrics || {};
    const metrics = m.deploy_temperature !== undefined ? judged(m) :
      Object.entries(m).map(([k, v]) => `${k}=${typeof v === "number" ? v.toFixed(3) : v}`).join(", ");
    const button = el("button", { "data-version": p.version, class: "rollout" }, "Roll out");
    button.addEventListener("click", () => {
      const canary = Math.max(0, parseInt(document.getElementById("canary").value, 10) || 0);
      act("/rollouts", { version: p.version, canary }, canary ? `canary of ${p.version} on ${canary} robot(s)` : `rolled out ${p.version}`);
    });
    return el("tr", {}, el("td", {}, el("code", {}, p.version)), el("td", {}, new Date(p.created_at).toLocaleString()),
      el("td", {}, p.created_by), el("td", {}, el("code", {}, p.parent || "—")), el("td", {}, metrics || "—"),
      el("td", { class: "admin" }, button));
  }));
}

function renderRollouts(rollouts) {
  fill("rollouts", rollouts.slice(0, 8).map((r) => {
    // A canary: its robots' successes under the version and the other robots' under theirs, same window.
    const counts = r.canary.length ?
      el("div", { class: "muted" }, `canary ${r.canary_successes}/${r.canary_episodes} vs fleet ${r.fleet_successes}/${r.fleet_episodes}`) : "";
    // Each target robot's part: running k/n, and who is pending, refused (with the reason) or rolled back.
    const states = Object.entries(r.robot_states || {});
    const running = states.filter(([, st]) => st.state === "running").length;
    const others = states.filter(([, st]) => st.state !== "running")
      .map(([robot, st]) => `${robot}: ${st.state.replace("_", " ")}${st.reason ? " (" + st.reason + ")" : ""}`);
    const robots = states.length ?
      el("div", { class: "muted robot-states" }, `running ${running}/${states.length}`, ...others.map((t) => el("div", {}, t))) : "";
    return el("tr", {}, el("td", {}, r.id), el("td", {}, el("code", {}, r.version)),
      el("td", { class: "rollout-status" }, r.status, robots, counts), el("td", {}, r.created_by), el("td", { class: "muted" }, r.reason || ""));
  }));
}

function renderRuns(runs) {
  fill("runs", runs.slice(0, 10).map((r) => {
    const bar = el("span", { class: "bar" }, el("span", { style: `width:${Math.round(100 * r.progress)}%` }));
    return el("tr", {}, el("td", {}, r.id), el("td", {}, r.status), el("td", {}, r.stage || "—"),
      el("td", {}, bar, ` ${Math.round(100 * r.progress)}%`), el("td", {}, ago(r.requested_at)),
      el("td", {}, r.requested_by), el("td", { class: "muted" }, r.result && r.result.outcome ? `${r.result.outcome}: ${r.result.outcome_reason || ""}` : r.reason || "",
        r.result && r.result.agreement ? el("div", { class: "agreement" }, `imagination vs the arm: ${r.result.agreement}`) : ""));
  }));
}

// Success rate per version over time, drawn as SVG polylines (Chart.js is not available offline), each
// point with its 95% Wilson interval (low/high from the API): a shaded band and a whisker per point, so a
// bucket of 2 episodes does not read like one of 200.
function renderPlot(series) {
  const plot = document.getElementById("plot");
  const W = 900, H = 240, L = 40, R = 170, T = 10, B = 30;
  const points = Object.values(series).flat();
  plot.replaceChildren();
  if (!points.length) {
    plot.append(svg("text", { x: L, y: H / 2 }, "no episodes with a known outcome yet"));
    return;
  }
  const times = points.map((p) => Date.parse(p.t));
  let t0 = Math.min(...times), t1 = Math.max(...times);
  if (t1 === t0) { t0 -= 60000; t1 += 60000; }
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (r) => T + (1 - r) * (H - T - B);
  for (const r of [0, 0.5, 1]) {
    plot.append(svg("line", { x1: L, x2: W - R, y1: y(r), y2: y(r), stroke: "#e4e7eb" }));
    plot.append(svg("text", { x: 4, y: y(r) + 4 }, `${Math.round(r * 100)}%`));
  }
  plot.append(svg("text", { x: L, y: H - 8 }, new Date(t0).toLocaleString()));
  plot.append(svg("text", { x: W - R, y: H - 8, "text-anchor": "end" }, new Date(t1).toLocaleString()));
  const versions = Object.keys(series).length;
  Object.entries(series).forEach(([version, pts], i) => {
    const color = COLORS[i % COLORS.length];
    const dx = (i - (versions - 1) / 2) * 5;  // versions side by side, so intervals in one minute do not overlap
    const px = (p) => x(Date.parse(p.t)) + dx;
    const at = (p, r) => `${px(p).toFixed(1)},${y(r).toFixed(1)}`;
    if (pts.length > 1) {
      const band = pts.map((p) => at(p, p.high)).concat(pts.slice().reverse().map((p) => at(p, p.low)));
      plot.append(svg("polygon", { points: band.join(" "), fill: color, "fill-opacity": 0.12, stroke: "none",
        class: "ci-band", "data-version": version }));
    }
    for (const p of pts) {
      const cx = px(p);
      const whisker = svg("g", { class: "ci", "data-version": version, stroke: color, "stroke-width": 1.5, "stroke-opacity": 0.6 });
      whisker.append(svg("line", { x1: cx, x2: cx, y1: y(p.low), y2: y(p.high) }),
        svg("line", { x1: cx - 4, x2: cx + 4, y1: y(p.low), y2: y(p.low) }),
        svg("line", { x1: cx - 4, x2: cx + 4, y1: y(p.high), y2: y(p.high) }));
      plot.append(whisker);
    }
    const xy = pts.map((p) => at(p, p.rate));
    plot.append(svg("polyline", { points: xy.join(" "), fill: "none", stroke: color, "stroke-width": 2, "data-version": version }));
    for (const p of pts) {
      const dot = svg("circle", { cx: px(p), cy: y(p.rate), r: 3.5, fill: color });
      const pct = (r) => `${Math.round(100 * r)}%`;
      dot.append(svg("title", {}, `${version}: ${p.successes}/${p.episodes} = ${pct(p.rate)} (95% interval ${pct(p.low)}–${pct(p.high)}) at ${p.t}`));
      plot.append(dot);
    }
    plot.append(svg("rect", { x: W - R + 12, y: T + 16 * i, width: 10, height: 10, fill: color }));
    plot.append(svg("text", { x: W - R + 28, y: T + 9 + 16 * i }, version));
  });
}

async function act(path, body, done) {
  try {
    await api(path, { method: "POST", body: JSON.stringify(body) });
    status(done + " at " + new Date().toLocaleTimeString());
    await refresh();
  } catch (e) {
    status(`${path}: ${e.message}`, true);
  }
}

// A refresh that succeeds clears an earlier error (the page's first load, before a token was saved, is answered
// 401); one that fails reports only if the token it used is still the one saved (a request that went out before
// the operator signed in must not leave "a valid API token is required" under a signed-in page).
async function refresh() {
  const used = token;
  try {
    const who = await api("/whoami");
    document.getElementById("who").textContent = `${who.name} (${who.role})`;
    document.body.classList.toggle("is-admin", who.role === "admin");
    const [robots, policies, rollouts, runs, series] = await Promise.all([
      api("/robots"), api("/policies"), api("/rollouts"), api("/runs"), api("/stats/success-rate?bucket_s=60"),
    ]);
    if (used !== token) return;
    renderRobots(robots); renderPolicies(policies); renderRollouts(rollouts); renderRuns(runs); renderPlot(series);
    if (document.getElementById("status").className === "bad") status("");
    document.body.dataset.loaded = "1";
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (e) {
    if (used === token) status(e.message, true);
  }
}

document.getElementById("token").value = token;
document.getElementById("save-token").addEventListener("click", () => {
  token = document.getElementById("token").value.trim();
  localStorage.setItem("flywheel-token", token);
  refresh();
});
document.getElementById("rollback").addEventListener("click", () => act("/rollback", {}, "rolled back"));
refresh();
setInterval(refresh, 2000);
