// ibc_ros operator console: camera stream, pointer teleop, recorder buttons, e-stop.
// The server (cell/console/server.py) sends frames as [kind u8, id u32, width u16, height u16, JPEG]
// and state as JSON; this page acknowledges every frame it draws (latency and fps are measured
// from those acks) and sends the held pointer in camera-image pixels.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const camera = document.getElementById("camera");
const cameraCtx = camera.getContext("2d");
const energy = document.getElementById("energy");
const FRAME_KINDS = ["camera", "energy"];
let ws = null;
let state = null;
let clientId = null;
let lastFrame = null;          // ImageBitmap of the newest camera frame
let lastFrameId = 0;           // its id (the server numbers frames as they arrive from ROS)
let framesShown = 0;
let held = null;               // [u, v] while the button is held
let resendTimer = null;
let calibrationClicks = null;  // array while calibrating
const logLines = [];

function say(text) {
  logLines.unshift(`${new Date().toLocaleTimeString()} ${text}`);
  logLines.length = Math.min(logLines.length, 30);
  document.getElementById("log").innerHTML = logLines.map(l => `<li>${escapeHtml(l)}</li>`).join("");
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
}

function connect() {
  ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(token)}`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => setBadge("connection", "connected", "ok");
  ws.onclose = () => {
    setBadge("connection", "disconnected: retrying", "bad");
    releasePointer("disconnected");
    setTimeout(connect, 1000);
  };
  ws.onmessage = event => (typeof event.data === "string" ? onState(JSON.parse(event.data)) : onFrame(event.data));
}

async function onFrame(buffer) {
  const view = new DataView(buffer);
  const kind = FRAME_KINDS[view.getUint8(0)];
  const id = view.getUint32(1);
  const bitmap = await createImageBitmap(new Blob([buffer.slice(9)], {type: "image/jpeg"}));
  if (kind === "camera") {
    lastFrame = bitmap;
    lastFrameId = id;
    framesShown += 1;
    if (camera.width !== bitmap.width || camera.height !== bitmap.height) {
      camera.width = bitmap.width;
      camera.height = bitmap.height;
    }
    drawCamera();
  } else {
    energy.width = bitmap.width;
    energy.height = bitmap.height;
    energy.getContext("2d").drawImage(bitmap, 0, 0);
  }
  send({type: "shown", kind, id});
}

function drawCamera() {
  if (!lastFrame) return;
  cameraCtx.drawImage(lastFrame, 0, 0);
  const overlay = state && state.overlay;
  if (overlay && overlay.outline) {
    cameraCtx.strokeStyle = "#00c800";
    cameraCtx.lineWidth = 1;
    cameraCtx.beginPath();
    overlay.outline.forEach(([u, v], i) => (i ? cameraCtx.lineTo(u, v) : cameraCtx.moveTo(u, v)));
    cameraCtx.closePath();
    cameraCtx.stroke();
  }
  if (overlay && overlay.arm_target) dot(overlay.arm_target, "#ffffff");
  if (overlay && overlay.commanded) circle(overlay.commanded, "#00c8ff");
  if (held) circle(held, "#ff3030");
  (calibrationClicks || []).forEach(p => cross(p, "#ffeb3b"));
}

function circle([u, v], colour) {
  cameraCtx.strokeStyle = colour;
  cameraCtx.lineWidth = 2;
  cameraCtx.beginPath();
  cameraCtx.arc(u, v, 5, 0, 2 * Math.PI);
  cameraCtx.stroke();
}

function dot([u, v], colour) {
  cameraCtx.fillStyle = colour;
  cameraCtx.beginPath();
  cameraCtx.arc(u, v, 2.5, 0, 2 * Math.PI);
  cameraCtx.fill();
}

function cross([u, v], colour) {
  cameraCtx.strokeStyle = colour;
  cameraCtx.lineWidth = 2;
  cameraCtx.beginPath();
  cameraCtx.moveTo(u - 6, v); cameraCtx.lineTo(u + 6, v);
  cameraCtx.moveTo(u, v - 6); cameraCtx.lineTo(u, v + 6);
  cameraCtx.stroke();
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function setBadge(id, text, kind) {
  const badge = document.getElementById(id);
  badge.textContent = text;
  badge.className = `badge ${kind || ""}`;
}

function rows(table, entries) {
  document.getElementById(table).innerHTML = entries
    .map(([name, value, cls]) => `<tr><td>${escapeHtml(name)}</td><td class="${cls || ""}">${escapeHtml(value)}</td></tr>`)
    .join("");
}

const fixed = (value, digits) => (value === null || value === undefined ? "-" : Number(value).toFixed(digits));

function onState(message) {
  if (message.type !== "state") return;
  state = message;
  if (message.you) clientId = message.you.client;
  const holder = message.console.holder;
  const inControl = message.you && message.you.seat === "control";
  setBadge("seat", inControl ? `console ${clientId}: in control` :
    `console ${clientId}: watching (console ${holder} holds control)`, inControl ? "ok" : "warn");
  document.querySelectorAll("button[data-action]").forEach(button => {
    const action = button.dataset.action;
    const unavailable = (message.unavailable || []).includes(action);
    button.hidden = !message.actions.includes(action);
    // E-STOP stays pressable whatever the seat or discovery state says (a refusal is shown, not hidden).
    button.disabled = action !== "estop" && (!inControl || unavailable);
    button.classList.toggle("unavailable", unavailable);
    if (button.dataset.title === undefined) button.dataset.title = button.title;
    button.title = unavailable ? `${action}: its node is not running (yet)` : button.dataset.title;
  });
  document.getElementById("calibrate").hidden = message.role !== "teleop";
  document.getElementById("calibrate").disabled = !inControl;
  document.getElementById("hint").hidden = message.role !== "teleop";
  document.getElementById("recorder-panel").hidden = message.role !== "teleop";
  document.getElementById("estop").classList.toggle("latched", message.estop === true);
  document.getElementById("estop").textContent = message.estop === true ? "E-STOP LATCHED" : "E-STOP";
  renderRecorder(message.recorder);
  renderTask(message.task);
  renderPolicy(message.policy);
  rows("rates", Object.entries(message.rates).map(([topic, hz]) => [topic, fixed(hz, 1)]));
  const mine = message.stream[String(clientId)];
  if (mine && mine.latency_ms.count) {
    document.getElementById("stream").textContent =
      `camera shown here at ${fixed(mine.fps, 1)} fps; image-to-browser latency p50 ${mine.latency_ms.p50} ms, ` +
      `p95 ${mine.latency_ms.p95} ms (${message.console.connected} console(s) open)`;
  }
  drawCamera();
}

function renderRecorder(rec) {
  if (!rec) { rows("recorder", [["recorder", "no status yet (is recorder_node running?)"]]); return; }
  rows("recorder", [
    ["state", rec.recording ? "RECORDING" : "idle", rec.recording ? "recording" : ""],
    ["episode", rec.episode === null ? "-" : rec.episode],
    ["elapsed", rec.recording ? `${fixed(rec.elapsed_s, 1)} s` : "-"],
    ["frames recorded", rec.frames === undefined ? "-" : rec.frames],
    ["setpoints recorded", rec.setpoints === undefined ? "-" : rec.setpoints],
    ["unflushed", rec.unflushed],
    ["written / dropped", `${rec.written} / ${rec.dropped}`],
    ["episodes kept this session", rec.kept === undefined ? "-" : rec.kept],
  ]);
}

function renderTask(task) {
  document.getElementById("task-panel").hidden = !task;
  // score: the task's partial credit (0.5 a partial insertion, 1/8 per sorted block)
  if (task) rows("task", [["distance to goal", `${fixed(task.distance, 3)} m`],
                          ["score", fixed(task.score, 3)],
                          ["success", task.success ? "yes" : "no", task.success ? "ok" : ""]]);
}

function renderPolicy(policy) {
  document.getElementById("policy-panel").hidden = !policy;
  if (policy) rows("policy", [["latency (frame to action)", `${fixed(policy.latency_ms, 1)} ms`],
                              ["inference", `${fixed(policy.inference_ms, 1)} ms`]]);
}

async function act(action) {
  const reply = await fetch(`/api/action/${action}`, {method: "POST", headers: headers()});
  const body = await reply.json().catch(() => ({ok: false, message: `HTTP ${reply.status}`}));
  say(body.ok ? body.message : `${action} refused: ${body.message}`);
}

function headers() {
  return {"X-Console-Token": token, "X-Console-Client": String(clientId), "Content-Type": "application/json"};
}

function imagePoint(event) {
  // The content box (inside the border) shows the image, scaled to camera.clientWidth.
  const rect = camera.getBoundingClientRect();
  return [(event.clientX - rect.left - camera.clientLeft) * camera.width / camera.clientWidth,
          (event.clientY - rect.top - camera.clientTop) * camera.height / camera.clientHeight];
}

function sendPointer() {
  if (held) send({type: "pointer", u: held[0], v: held[1]});
}

function releasePointer(why) {
  if (resendTimer) clearInterval(resendTimer);
  resendTimer = null;
  if (held) send({type: "release", why: typeof why === "string" ? why : why && why.type});
  held = null;
  camera.classList.remove("holding");
}

camera.addEventListener("pointerdown", event => {
  if (event.button !== 0 || !state || state.role !== "teleop") return;
  if (calibrationClicks) {
    calibrationClicks.push(imagePoint(event));
    if (calibrationClicks.length === 4) finishCalibration();
    else say(`calibration: click workspace corner ${calibrationClicks.length + 1} of 4`);
    drawCamera();
    return;
  }
  held = imagePoint(event);
  camera.classList.add("holding");
  sendPointer();
  // A held, unmoving pointer keeps pushing: repeat it well inside teleop's pointer_timeout_s.
  resendTimer = setInterval(sendPointer, 1000 * (state.pointer_resend_s || 0.1));
});
// Moves and the release are heard on the whole window (no pointer capture: Chromium dropped it
// mid-drag now and then): a release anywhere lets go; a move outside the image keeps the last point.
window.addEventListener("pointermove", event => {
  if (!held) return;
  const [u, v] = imagePoint(event);
  if (u < 0 || v < 0 || u > camera.width - 1 || v > camera.height - 1) return;
  held = [u, v];
  sendPointer();
});
["pointerup", "pointercancel"].forEach(name => window.addEventListener(name, releasePointer));
window.addEventListener("blur", releasePointer);
document.addEventListener("visibilitychange", () => { if (document.hidden) releasePointer(); });
window.addEventListener("pagehide", releasePointer);

function startCalibration() {
  releasePointer();
  calibrationClicks = [];
  camera.classList.add("calibrating");
  const corners = state && state.corners ? state.corners.map(c => `(${c[0]}, ${c[1]})`).join(", ") : "";
  say(`calibration: click the 4 workspace corners in order ${corners}; corner 1 of 4`);
}

async function finishCalibration() {
  const clicks = calibrationClicks;
  calibrationClicks = null;
  camera.classList.remove("calibrating");
  const reply = await fetch("/api/calibrate", {method: "POST", headers: headers(), body: JSON.stringify({clicks})});
  const body = await reply.json().catch(() => ({ok: false, message: `HTTP ${reply.status}`}));
  say(`calibration: ${body.ok ? "" : "failed: "}${body.message}`);
}

document.querySelectorAll("button[data-action]").forEach(button =>
  button.addEventListener("click", () => act(button.dataset.action)));
document.getElementById("calibrate").addEventListener("click", startCalibration);
document.addEventListener("keydown", event => {
  if (event.key === " " || event.key === "Escape") { event.preventDefault(); act("estop"); return; }
  const button = document.querySelector(`button[data-key="${event.key}"]`);
  if (button && !button.hidden && !button.disabled) button.click();
});

connect();
