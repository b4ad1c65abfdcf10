// holdfast console: every action is a call to the public API (docs/openapi.json) with the
// admin key as a bearer header. The key lives in this tab's sessionStorage only. Text from
// the server is only ever set as textContent, never parsed as HTML.
"use strict";

const KEY = "holdfast.admin-key";
const $ = (id) => document.getElementById(id);

async function api(method, path, body, contentType) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY) };
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = contentType || "application/json";
    payload = contentType ? body : JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  return { status: response.status, body: json };
}

function problem(answer) {
  const body = answer.body || {};
  return body.detail || body.title || "HTTP " + answer.status;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

// The same thresholds as the Grafana dashboard's sell-through panel.
function rag(share) {
  if (share === null) return "";
  if (share >= 0.95) return "red";
  if (share >= 0.8) return "yellow";
  return "green";
}

// ---- sign in and screens ----

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  const answer = await api("GET", "/v1/admission");
  if (answer.status !== 200) {
    sessionStorage.removeItem(KEY);
    $("signin-error").textContent = answer.status === 401 || answer.status === 403
      ? "That key was not accepted." : "Sign-in failed: " + problem(answer);
    return false;
  }
  $("signin-error").textContent = "";
  $("signin").hidden = true;
  $("nav").hidden = false;
  show("skus");
  return true;
}

function show(name) {
  for (const section of document.querySelectorAll(".screen")) {
    section.hidden = section.id !== "screen-" + name;
  }
  for (const button of document.querySelectorAll("nav button[data-screen]")) {
    if (button.dataset.screen === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  if (name === "skus") searchSkus();
  if (name === "sales") loadSales();
  if (name === "live") startAdmissionPoll(); else stopAdmissionPoll();
}

// ---- SKUs ----

async function searchSkus() {
  const prefix = $("sku-search").value.trim();
  const answer = await api("GET", "/v1/skus?limit=100&prefix=" + encodeURIComponent(prefix));
  const body = $("sku-table").tBodies[0];
  clear(body);
  if (answer.status !== 200) { $("sku-message").textContent = problem(answer); return; }
  for (const sku of answer.body.skus) {
    const row = body.insertRow();
    cell(row, sku.sku);
    for (const field of ["on_hand", "safety_stock", "held", "committed", "available"]) {
      cell(row, sku[field], "num");
    }
    cell(row, Object.entries(sku.channels)
      .map(([name, c]) => `${name}: ${c.available} of ${c.allocated}`).join("; "));
    cell(row, Object.entries(sku.locations || {})
      .map(([name, l]) => `${name}: ${l.available} avail, ${l.on_hand} on hand`).join("; "));
  }
}

async function setStock(event) {
  event.preventDefault();
  const sku = $("stock-sku").value.trim();
  const location = $("stock-location").value.trim() || "default";
  const body = { on_hand: Number($("stock-on-hand").value) };
  if ($("stock-safety").value !== "") body.safety_stock = Number($("stock-safety").value);
  const path = location === "default"
    ? `/v1/skus/${encodeURIComponent(sku)}`
    : `/v1/skus/${encodeURIComponent(sku)}/locations/${encodeURIComponent(location)}`;
  const answer = await api("PUT", path, body);
  $("sku-message").textContent = answer.status === 200
    ? `${sku}: ${answer.body.on_hand} on hand, ${answer.body.available} available.` : problem(answer);
  searchSkus();
}

async function adjust(event) {
  event.preventDefault();
  const sku = $("adjust-sku").value.trim();
  const body = {
    delta: Number($("adjust-delta").value),
    reason: $("adjust-reason").value,
    location: $("adjust-location").value.trim() || "default",
  };
  const answer = await api("POST", `/v1/skus/${encodeURIComponent(sku)}/adjustments`, body);
  $("sku-message").textContent = answer.status === 200
    ? `${sku}: ${answer.body.on_hand} on hand after ${body.reason}.` : problem(answer);
  searchSkus();
}

// ---- allocation ----

let allocView = null;

function sellable(view) { return view.held + view.committed + view.available; }

function allocRow(name, mode, amount, usage) {
  const row = $("alloc-rows").tBodies[0].insertRow();
  const index = row.rowIndex;
  const td = () => row.insertCell();
  const channel = document.createElement("input");
  channel.value = name; channel.className = "alloc-channel"; channel.maxLength = 64;
  channel.setAttribute("aria-label", "Channel name, row " + index);
  td().appendChild(channel);
  const select = document.createElement("select");
  select.className = "alloc-mode"; select.setAttribute("aria-label", "Units or percent, row " + index);
  for (const option of ["units", "percent"]) {
    const o = document.createElement("option"); o.value = option; o.textContent = option;
    select.appendChild(o);
  }
  select.value = mode;
  td().appendChild(select);
  const input = document.createElement("input");
  input.type = "number"; input.min = "0"; input.value = amount; input.className = "alloc-amount";
  input.setAttribute("aria-label", "Amount, row " + index);
  td().appendChild(input);
  const result = td(); result.className = "num alloc-result";
  cell(row, usage ? usage.held : 0, "num");
  cell(row, usage ? usage.committed : 0, "num");
  for (const control of [channel, select, input]) control.addEventListener("input", previewAllocation);
}

function requestedAllocation() {
  const channels = {};
  for (const row of $("alloc-rows").tBodies[0].rows) {
    const name = row.querySelector(".alloc-channel").value.trim();
    if (!name) continue;
    const mode = row.querySelector(".alloc-mode").value;
    channels[name] = { [mode]: Number(row.querySelector(".alloc-amount").value || 0) };
  }
  return channels;
}

// The units each row comes to before saving: percent of sellable stock, rounded down, as
// the server resolves it.
function previewAllocation() {
  if (!allocView) return;
  const total = sellable(allocView);
  let allocated = 0;
  for (const row of $("alloc-rows").tBodies[0].rows) {
    const mode = row.querySelector(".alloc-mode").value;
    const amount = Number(row.querySelector(".alloc-amount").value || 0);
    const units = mode === "percent" ? Math.floor(total * amount / 100) : amount;
    allocated += units;
    row.querySelector(".alloc-result").textContent = String(units);
  }
  const pool = total - allocated;
  $("alloc-pool").textContent = pool < 0 ? `${pool} (over by ${-pool})` : String(pool);
  $("alloc-pool").className = pool < 0 ? "num red" : "num";
}

function renderAllocation(view) {
  allocView = view;
  clear($("alloc-rows").tBodies[0]);
  for (const [name, usage] of Object.entries(view.channels)) {
    if (name !== "pool") allocRow(name, "units", usage.allocated, usage);
  }
  $("alloc-summary").textContent =
    `${view.sku}: ${sellable(view)} sellable, ${view.held} held, ${view.committed} committed.`;
  previewAllocation();
}

async function loadAllocation(event) {
  if (event) event.preventDefault();
  const sku = $("alloc-sku").value.trim();
  const answer = await api("GET", `/v1/skus/${encodeURIComponent(sku)}`);
  $("alloc-error").textContent = "";
  $("rebalance-preview").hidden = true; $("rebalance-apply").hidden = true;
  if (answer.status !== 200) { $("alloc-error").textContent = problem(answer); return; }
  renderAllocation(answer.body);
}

async function saveAllocation(event) {
  event.preventDefault();
  if (!allocView) return;
  const answer = await api("PUT", `/v1/skus/${encodeURIComponent(allocView.sku)}/allocation`,
    { channels: requestedAllocation() });
  if (answer.status === 200) {
    $("alloc-error").textContent = "";
    renderAllocation(answer.body);
    $("alloc-summary").textContent += " Saved.";
  } else {
    $("alloc-summary").textContent = `${allocView.sku}: not saved.`;
    $("alloc-error").textContent = problem(answer);
  }
}

let pendingPolicy = null;

async function previewRebalance(policy) {
  if (!allocView) return;
  const path = `/v1/skus/${encodeURIComponent(allocView.sku)}/allocation/rebalance`;
  const answer = await api("POST", path, { policy, dry_run: true });
  if (answer.status !== 200) { $("alloc-error").textContent = problem(answer); return; }
  const body = $("rebalance-preview").tBodies[0];
  clear(body);
  for (const [name, after] of Object.entries(answer.body.channels)) {
    const before = allocView.channels[name] ? allocView.channels[name].allocated : 0;
    const row = body.insertRow();
    cell(row, name); cell(row, before, "num"); cell(row, after.allocated, "num");
  }
  pendingPolicy = policy;
  $("rebalance-preview").hidden = false; $("rebalance-apply").hidden = false;
}

async function applyRebalance() {
  if (!allocView || !pendingPolicy) return;
  const path = `/v1/skus/${encodeURIComponent(allocView.sku)}/allocation/rebalance`;
  const answer = await api("POST", path, { policy: pendingPolicy });
  if (answer.status !== 200) { $("alloc-error").textContent = problem(answer); return; }
  $("rebalance-preview").hidden = true; $("rebalance-apply").hidden = true;
  renderAllocation(answer.body);
}

// ---- sales ----

// A UTC instant as the value of a datetime-local input, in this browser's time zone.
function toLocalInput(iso) {
  const at = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T` +
    `${pad(at.getHours())}:${pad(at.getMinutes())}`;
}

async function loadSales() {
  $("tz").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "local";
  const answer = await api("GET", "/v1/sales");
  const body = $("sales-table").tBodies[0];
  clear(body);
  if (answer.status !== 200) { $("sale-message").textContent = problem(answer); return; }
  for (const sale of answer.body) {
    const row = body.insertRow();
    cell(row, sale.sale_id); cell(row, sale.name);
    cell(row, new Date(sale.starts_at).toLocaleString());
    cell(row, new Date(sale.ends_at).toLocaleString());
    cell(row, sale.open ? "open" : "closed"); cell(row, sale.skus.join(", "));
    const edit = document.createElement("button");
    edit.type = "button"; edit.textContent = "Edit " + sale.sale_id;
    edit.addEventListener("click", () => fillSale(sale));
    row.insertCell().appendChild(edit);
  }
}

function fillSale(sale) {
  $("sale-id").value = sale.sale_id; $("sale-name").value = sale.name;
  $("sale-starts").value = toLocalInput(sale.starts_at);
  $("sale-ends").value = toLocalInput(sale.ends_at);
  $("sale-skus").value = sale.skus.join(", ");
  $("sale-limit").value = sale.per_customer_limit || "";
  $("sale-ttl").value = sale.hold_ttl_s || "";
  $("sale-after-end").value = sale.after_end || "open";
  $("sale-in-flight").value = sale.admission ? sale.admission.in_flight_max : "";
  $("sale-queue").value = sale.admission ? sale.admission.queue_max : "";
  $("sale-id").focus();
}

async function saveSale(event) {
  event.preventDefault();
  const id = $("sale-id").value.trim();
  const body = {
    name: $("sale-name").value,
    starts_at: new Date($("sale-starts").value).toISOString(),
    ends_at: new Date($("sale-ends").value).toISOString(),
    skus: $("sale-skus").value.split(",").map((s) => s.trim()).filter(Boolean),
    after_end: $("sale-after-end").value,
  };
  if ($("sale-limit").value) body.per_customer_limit = Number($("sale-limit").value);
  if ($("sale-ttl").value) body.hold_ttl_s = Number($("sale-ttl").value);
  if ($("sale-in-flight").value) {
    const status = await api("GET", "/v1/admission");
    const limits = status.body || {};
    body.admission = {
      in_flight_max: Number($("sale-in-flight").value),
      queue_max: Number($("sale-queue").value || limits.queue_max || 0),
      wait_max_ms: limits.wait_max_ms || 2000,
      rate_per_s: 0,
    };
  }
  const answer = await api("PUT", `/v1/sales/${encodeURIComponent(id)}`, body);
  $("sale-message").textContent = answer.status === 200
    ? `Sale ${id} saved: ${new Date(answer.body.starts_at).toLocaleString()} to ` +
      `${new Date(answer.body.ends_at).toLocaleString()}.`
    : problem(answer);
  loadSales();
}

// ---- feeds ----

async function uploadFeed(event) {
  event.preventDefault();
  const file = $("feed-file").files[0];
  if (!file) return;
  const csv = /\.csv$/i.test(file.name) || file.type === "text/csv";
  const answer = await api("POST", "/v1/feeds/stock", await file.text(),
    csv ? "text/csv" : "application/x-ndjson");
  const list = $("feed-errors");
  clear(list);
  if (answer.status !== 200) { $("feed-result").textContent = problem(answer); return; }
  $("feed-result").textContent =
    `Applied ${answer.body.applied} lines; ${answer.body.errors_total} bad.`;
  for (const error of answer.body.errors) {
    const item = document.createElement("li");
    item.textContent = `Line ${error.line}: ${error.detail}`;
    list.appendChild(item);
  }
}

// ---- live sale ----

let watched = [];
let views = new Map();
let stream = null;
let lastEventId = null;
const due = new Map();

function renderLive() {
  const body = $("live-table").tBodies[0];
  clear(body);
  for (const sku of watched) {
    const view = views.get(sku);
    if (!view) continue;
    const total = sellable(view);
    const skuShare = total ? view.committed / total : 0;
    const row = body.insertRow();
    row.dataset.sku = sku; row.dataset.channel = "";
    cell(row, sku); cell(row, "all");
    cell(row, total, "num"); cell(row, view.committed, "num");
    cell(row, (skuShare * 100).toFixed(1) + "%", rag(skuShare));
    cell(row, view.held, "num"); cell(row, view.available, "num live-available");
    for (const [name, c] of Object.entries(view.channels)) {
      const share = c.allocated ? c.committed / c.allocated : null;
      const channelRow = body.insertRow();
      channelRow.dataset.sku = sku; channelRow.dataset.channel = name;
      cell(channelRow, ""); cell(channelRow, name);
      cell(channelRow, c.allocated, "num"); cell(channelRow, c.committed, "num");
      cell(channelRow, share === null ? "–" : (share * 100).toFixed(1) + "%", rag(share));
      cell(channelRow, c.held, "num"); cell(channelRow, c.available, "num");
    }
  }
}

async function refresh(sku) {
  const answer = await api("GET", `/v1/skus/${encodeURIComponent(sku)}`);
  if (answer.status === 200) { views.set(sku, answer.body); renderLive(); }
}

// Events come per change; a SKU is read again at most every 200 ms, well within a second.
function changed(sku) {
  if (!watched.includes(sku) || due.has(sku)) return;
  due.set(sku, setTimeout(() => { due.delete(sku); refresh(sku); }, 200));
}

// The stream is read with fetch, not EventSource, so the key goes in a header.
async function follow() {
  const controller = new AbortController();
  stream = controller;
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY), Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  try {
    const response = await fetch("/v1/availability/stream", { headers, signal: controller.signal });
    if (response.status !== 200) throw new Error("the stream answered " + response.status);
    $("live-status").textContent = "Live: following the availability stream.";
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("id:")) lastEventId = line.slice(3).trim();
          if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (!data) continue;
        try { const event = JSON.parse(data); if (event.sku) changed(event.sku); } catch (_) { /* keep-alive */ }
      }
    }
  } catch (error) {
    if (controller.signal.aborted) return;
    $("live-status").textContent = "Live: reconnecting (" + error.message + ")";
  }
  if (stream === controller) setTimeout(follow, 1000);
}

async function watch(event) {
  event.preventDefault();
  watched = $("live-skus").value.split(",").map((s) => s.trim()).filter(Boolean).slice(0, 50);
  views = new Map();
  await Promise.all(watched.map(refresh));
  renderLive();
  if (stream) stream.abort();
  follow();
}

let admissionTimer = null;

// The queue the watched SKUs' holds go through: an open sale's own, if one of them is on
// such a sale, else the server-wide one.
async function pollAdmission() {
  let s = null;
  let label = "server-wide";
  const sales = await api("GET", "/v1/sales");
  if (sales.status === 200) {
    const own = sales.body.find((sale) => sale.open && sale.queue &&
      sale.skus.some((sku) => watched.includes(sku)));
    if (own) { s = own.queue; label = "sale " + own.sale_id; }
  }
  if (!s) {
    const answer = await api("GET", "/v1/admission");
    if (answer.status !== 200) return;
    s = answer.body;
  }
  $("adm-queue").textContent = label;
  $("adm-queued").textContent = `${s.queued} of ${s.queue_max}`;
  $("adm-in-flight").textContent = `${s.in_flight} of ${s.in_flight_max}`;
  $("adm-wait").textContent = `${s.estimated_wait_ms} ms`;
  $("adm-refused").textContent = String(s.refused_total);
}

function startAdmissionPoll() {
  if (admissionTimer) return;
  pollAdmission();
  admissionTimer = setInterval(pollAdmission, 1000);
}

function stopAdmissionPoll() {
  if (admissionTimer) clearInterval(admissionTimer);
  admissionTimer = null;
}

// ---- wiring ----

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("key").value);
    $("key").value = "";
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    if (stream) stream.abort();
    location.reload();
  });
  for (const button of document.querySelectorAll("nav button[data-screen]")) {
    button.addEventListener("click", () => show(button.dataset.screen));
  }
  $("sku-search-form").addEventListener("submit", (event) => { event.preventDefault(); searchSkus(); });
  $("stock-form").addEventListener("submit", setStock);
  $("adjust-form").addEventListener("submit", adjust);
  $("alloc-load").addEventListener("submit", loadAllocation);
  $("alloc-form").addEventListener("submit", saveAllocation);
  $("alloc-add").addEventListener("click", () => allocRow("", "units", 0, null));
  for (const policy of ["release_unsold", "by_velocity"]) {
    $("rebalance-" + policy).addEventListener("click", () => previewRebalance(policy));
  }
  $("rebalance-apply").addEventListener("click", applyRebalance);
  $("sale-form").addEventListener("submit", saveSale);
  $("feed-form").addEventListener("submit", uploadFeed);
  $("live-form").addEventListener("submit", watch);
  if (sessionStorage.getItem(KEY) !== null) signIn(sessionStorage.getItem(KEY));
});
