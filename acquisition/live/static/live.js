// The live page: one event stream of the run's content, drawn with uPlot (served from here).
"use strict";

const state = { channel: null, summed: true, source: null, plots: {} };
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf"];
const $ = (id) => document.getElementById(id);

function fmtTime(s) {
  if (s == null) return "-";
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(2) + " h";
}

function fmtSi(v, unit) {
  if (v == null) return "-";
  const a = Math.abs(v);
  const [f, p] = a >= 1 || a === 0 ? [1, ""] : a >= 1e-3 ? [1e3, "m"] : a >= 1e-6 ? [1e6, "\u00b5"]
    : [1e9, "n"];
  return (v * f).toPrecision(3) + " " + p + unit;
}

function note(id, text) {
  const el = $(id + "-note");
  el.hidden = !text;
  el.textContent = text || "";
  $(id + "-plot").hidden = !!text;
}

// A plot kept between updates; made anew when its series change.
function plot(id, series, data, opts = {}) {
  const el = $(id + "-plot");
  const key = JSON.stringify(series.map((s) => s.label)) + (opts.key || "");
  let p = state.plots[id];
  if (!p || p.key !== key) {
    if (p) p.plot.destroy();
    const width = Math.max(300, el.clientWidth || 540);
    const o = {
      width, height: opts.height || 260,
      scales: { x: { time: false }, ...(opts.scales || {}) },
      axes: [{ label: opts.xlabel }, { label: opts.ylabel, size: 70 }],
      series: [{ label: opts.xlabel }, ...series],
      legend: { show: series.length <= 12 },
      hooks: opts.hooks || {},
    };
    p = { key, plot: new uPlot(o, data, el) };
    state.plots[id] = p;
  } else {
    p.plot.setData(data);
  }
  p.plot.marks = opts.marks || [];
  p.plot.redraw(false, false);
}

// Vertical lines at the plot's `marks` (x values): expected lines, tones.
const markLines = {
  draw: [(u) => {
    const { ctx, bbox } = u;
    ctx.save();
    ctx.strokeStyle = "#c33";
    ctx.setLineDash([5, 4]);
    for (const x of u.marks || []) {
      const px = u.valToPos(x, "x", true);
      if (px < bbox.left || px > bbox.left + bbox.width) continue;
      ctx.beginPath(); ctx.moveTo(px, bbox.top); ctx.lineTo(px, bbox.top + bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  }],
};

function showCampaign(c, problem) {
  $("campaign").textContent = c.name;
  const st = $("status");
  st.textContent = c.status;
  st.className = "status " + c.status;
  $("current").textContent = c.current ? `${c.current.id}: ${c.current.label}` : "-";
  $("steps-done").textContent = c.steps_done;
  $("steps-total").textContent = c.steps_total;
  $("steps-to-go").textContent = c.steps_to_go;
  $("virtual").textContent = fmtTime(c.virtual_time_s);
  $("wall").textContent = fmtTime(c.wall_time_s);
  $("end").hidden = !c.end;
  $("end").textContent = c.end || "";
  const p = problem || c.problem;
  $("problem").hidden = !p;
  $("problem").textContent = p || "";
}

function showChannels(v) {
  const acq = v.acquisition;
  if (!acq) { $("channels-note").hidden = false; $("channels").hidden = true; return; }
  $("channels-note").hidden = true;
  $("channels").hidden = false;
  $("acquisition").textContent =
    `${acq.name} (${acq.source}, ${(acq.sample_rate_hz / 1e3).toPrecision(4)} kHz)` +
    (acq.closed ? ", finished" : "");
  const drops = Object.entries(acq.drops).map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  $("totals").textContent = `stream ${fmtTime(acq.stream_time_s)}, ${acq.records} records, ` +
    `gaps ${acq.gaps} (${acq.gap_samples} samples, ${acq.records_lost_to_gaps} records lost), ` +
    `drops: ${drops}`;
  const body = $("channels").tBodies[0];
  const rows = v.channels.map((c) => {
    const cls = [c.stopped ? "stopped" : "", c.noise_jumped ? "noise-jump" : "",
                 c.channel === v.pulses?.channel ? "chosen" : ""].join(" ").trim();
    const flag = c.stopped ? (c.pulses ? "stopped triggering" : "no pulses") : c.noise_jumped
      ? `noise jumped (was ${fmtSi(c.noise_reference, acq.unit)})` : "ok";
    return `<tr data-channel="${c.channel}" class="${cls}"><td>${c.channel}</td>` +
      `<td class="rate">${c.rate_hz.toFixed(2)}</td><td>${c.mean_rate_hz.toFixed(2)}</td>` +
      `<td class="records">${c.records}</td><td>${c.pulses}</td>` +
      `<td class="noise">${fmtSi(c.noise, acq.unit)}</td><td class="flag">${flag}</td></tr>`;
  });
  body.innerHTML = rows.join("");
  const select = $("channel-select");
  const wanted = v.channels.map((c) => String(c.channel)).join(",");
  if (select.dataset.channels !== wanted) {
    select.innerHTML = v.channels.map((c) => `<option>${c.channel}</option>`).join("");
    select.dataset.channels = wanted;
  }
  if (v.pulses) select.value = String(v.pulses.channel);
}

function showPulses(p, unit) {
  if (!p || !p.t_ms.length) { note("pulses", "no pulses of this channel yet"); return; }
  note("pulses", "");
  const series = p.pulses.map((_, i) => ({ label: `#${i + 1}`, stroke: "#9ab", width: 1 }));
  series.push({ label: `average of ${p.averaged}`, stroke: "#d62728", width: 2.5 });
  const scaled = (ys) => ys.map((y) => y * p.scale);
  plot("pulses", series, [p.t_ms, ...p.pulses.map(scaled), scaled(p.average)],
       { xlabel: "time from trigger (ms)", ylabel: unit, key: String(p.channel) });
}

function showSpectrum(s, lines) {
  if (!s || !s.x.length) { note("spectrum", "no pulse recorded yet"); return; }
  note("spectrum", "");
  const what = s.kind === "energy" ? "online energies" : "pulse heights";
  const marks = s.kind === "energy" ? lines : [];
  $("spectrum-entries").textContent = `${what}, ${s.entries} pulses` +
    (s.kind === "energy" && lines.length ? `; expected ${lines.join(", ")} eV` : "") +
    (s.kind !== "energy" && lines.length ? "; lines marked once a filter gives energies" : "");
  plot("spectrum", [{ label: "counts", stroke: "#1f77b4", fill: "#1f77b433",
                      paths: uPlot.paths.stepped({ align: 0 }) }],
       [s.x, s.counts],
       { xlabel: s.kind === "energy" ? "energy (eV)" : `pulse height (${s.unit})`,
         ylabel: "counts per bin", key: s.kind, marks, hooks: markLines });
}

// A factor and SI prefix that show values up to `top` in 1 ... 1000.
function siScale(top) {
  for (const [f, p] of [[1, ""], [1e3, "m"], [1e6, "\u00b5"], [1e9, "n"], [1e12, "p"], [1e15, "f"]]) {
    if (top * f >= 1) return [f, p];
  }
  return [1e18, "a"];
}

// The pause that breaks a series' line: ten times its usual spacing (none for few points).
function pause(ts) {
  if (ts.length < 4) return Infinity;
  const dts = ts.slice(1).map((t, i) => t - ts[i]).sort((a, b) => a - b);
  return 10 * dts[Math.floor(dts.length / 2)];
}

// Series of [t, value] points on one time axis (uPlot.join aligns them); a series' line is
// broken (nulls) where it pauses, never drawn across a time nothing was read.
function timeSeries(id, named, scale, ylabel, style) {
  const gaps = named.map(([, pts]) => pause(pts.map((q) => q[0])));
  const tables = named.map(([, pts], k) => {
    const ts = [], ys = [];
    pts.forEach((q, i) => {
      if (i && q[0] - pts[i - 1][0] > gaps[k]) { ts.push((q[0] + pts[i - 1][0]) / 2); ys.push(null); }
      ts.push(q[0]); ys.push(q[1] * scale);
    });
    return [ts, ys];
  });
  const data = uPlot.join(tables);
  const x = data[0];
  tables.forEach((_, k) => {
    const ys = data[k + 1];
    const gap = gaps[k];
    let last = -1;
    for (let j = 0; j < x.length; j++) {
      if (ys[j] == null) continue;
      if (last >= 0 && x[j] - x[last] > gap) for (let i = last + 1; i < j; i++) ys[i] = null;
      last = j;
    }
  });
  const series = named.map(([label, , kind], i) => ({
    label, stroke: COLOURS[i % COLOURS.length], ...style(kind),
  }));
  plot(id, series, data, { xlabel: "run time (s)", ylabel, height: 220 });
}

function showTemperatures(t) {
  const named = [...Object.entries(t.readings).map(([n, p]) => [`${n}`, p, "reading"]),
                 ...Object.entries(t.setpoints).map(([n, p]) => [`${n} setpoint`, p, "setpoint"])];
  if (!named.length) note("temperatures", "no thermometer reading or setpoint recorded yet");
  else {
    note("temperatures", "");
    timeSeries("temperatures", named, 1e3, "mK", (kind) => kind === "setpoint"
      ? { width: 1, dash: [6, 4], paths: uPlot.paths.stepped({ align: 1 }) }
      : { width: 2, points: { show: named.every(([, p]) => p.length < 60) } });
  }
  const heaters = Object.entries(t.heaters || {}).map(([n, p]) => [`${n} heater`, p, "heater"]);
  if (!heaters.length) note("heaters", "no heater power recorded yet");
  else {
    note("heaters", "");
    const top = Math.max(...heaters.flatMap(([, p]) => p.map((q) => Math.abs(q[1]))), 1e-30);
    const [f, prefix] = siScale(top);
    timeSeries("heaters", heaters, f, prefix + "W", () => ({ width: 2 }));
  }
}

function showHaloscope(h) {
  if (!h) { note("haloscope", "no power spectrum in this run"); return; }
  note("haloscope", "");
  const centre = h.f_Hz[Math.floor(h.f_Hz.length / 2)];
  const f = h.f_Hz.map((x) => (x - centre) / 1e6);
  const [k, prefix] = siScale(Math.max(...h.power_W));
  const series = [{ label: h.name, stroke: "#1f77b4" }];
  const data = [f, h.power_W.map((p) => p * k)];
  if (h.model) { series.push({ label: "fitted model", stroke: "#d62728", width: 2 });
                 data.push(h.model.map((p) => p * k)); }
  plot("haloscope", series, data, {
    xlabel: `MHz from ${(centre / 1e9).toFixed(6)} GHz`, ylabel: `${prefix}W per bin` });
  $("haloscope-note").hidden = false;
  $("haloscope-note").textContent = h.model_note || "";
}

function showUmux(m) {
  if (!m) { note("umux", "no resonator sweep in this run"); return; }
  note("umux", "");
  plot("umux", [{ label: "|S21|", stroke: "#1f77b4" }], [m.f_Hz.map((x) => x / 1e6), m.s21_dB],
       { xlabel: "baseband frequency (MHz)", ylabel: "dB", marks: m.tones_Hz.map((x) => x / 1e6),
         hooks: markLines });
}

function show(v) {
  showCampaign(v.campaign, v.problem);
  showChannels(v);
  const unit = v.acquisition ? v.acquisition.unit : "";
  showPulses(v.pulses, unit);
  showSpectrum(v.spectrum, v.campaign.lines_ev || []);
  showTemperatures(v.temperatures);
  showHaloscope(v.haloscope);
  showUmux(v.umux);
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

function connect() {
  if (state.source) state.source.close();
  const q = new URLSearchParams({ spectrum: state.summed ? "sum" : "channel" });
  if (state.channel != null) q.set("channel", state.channel);
  const source = new EventSource("/api/events?" + q);
  state.source = source;
  source.onmessage = (e) => { $("link").textContent = ""; show(JSON.parse(e.data)); };
  source.addEventListener("end", () => {
    source.close();
    $("link").textContent = "the run ended; the server has stopped";
  });
  source.onerror = () => { $("link").textContent = "reconnecting..."; };
}

$("channel-select").addEventListener("change", (e) => { state.channel = e.target.value; connect(); });
$("spectrum-select").addEventListener("change", (e) => {
  state.summed = e.target.value === "sum"; connect();
});
$("channels").addEventListener("click", (e) => {
  const row = e.target.closest("tr[data-channel]");
  if (row) { state.channel = row.dataset.channel; connect(); }
});
connect();
