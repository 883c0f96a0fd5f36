// The marketplace page: Sell (classify a photo and/or text) and Buy (search, once the proxy serves it).
// Plain browser JavaScript, no build step and no third-party code; every request goes to this proxy.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  capabilities: null, // GET /capabilities: the served models' kinds, each kind's route and body
  models: [], // [{name, kind, reads}] servable models, from GET /models
};

// ---------------------------------------------------------------------------------------------
// Errors: every failure becomes one sentence a seller or buyer can act on.

class UserMessage extends Error {}

function formatBytes(bytes) {
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

async function readDetail(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) { // FastAPI's 422: [{loc, msg}, ...]
      return body.detail.map((d) => `${(d.loc || []).slice(1).join(".") || "request"}: ${d.msg}`).join("; ");
    }
    return JSON.stringify(body);
  } catch {
    return `${response.status} ${response.statusText}`.trim();
  }
}

async function messageFor(response) {
  const detail = await readDetail(response);
  const retry = response.headers.get("Retry-After");
  const wait = retry ? ` Try again in ${retry} s.` : " Try again in a moment.";
  switch (response.status) {
    case 400: return `We could not use this: ${detail}`;
    case 413: return `The photo is too large. ${detail}`;
    case 422: return `Some of what you entered is not valid: ${detail}`;
    case 429:
    case 503: return `The service is busy or not ready.${wait} (${detail})`;
    case 504: return `The service took too long to answer.${wait} (${detail})`;
    case 502: return `The service gave an unexpected answer; try again, and tell the site's operator if it persists. (${detail})`;
    default: return detail;
  }
}

// fetch() that turns "no answer at all" and any non-2xx answer into a UserMessage.
async function call(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new UserMessage(`Cannot reach the service at ${location.origin}: check that it is running and try again.`);
  }
  if (!response.ok) throw new UserMessage(await messageFor(response));
  return response.json();
}

function showError(box, error) {
  if (!(error instanceof UserMessage)) console.error(error);
  box.textContent = error instanceof UserMessage ? error.message : `Something went wrong in this page: ${error}`;
  box.hidden = false;
}

// A photo is checked here first, so a wrong or huge file is refused without uploading it.
function checkPhoto(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    throw new UserMessage(`“${file.name}” is not an image (${file.type}): choose a photo (JPEG, PNG, WebP …).`);
  }
  const limit = state.capabilities && state.capabilities.max_upload_bytes;
  if (limit && file.size > limit) {
    throw new UserMessage(`“${file.name}” is ${formatBytes(file.size)}, over the ${formatBytes(limit)} limit: ` +
      "choose a smaller or more compressed photo.");
  }
  if (file.size === 0) throw new UserMessage(`“${file.name}” is empty: choose another photo.`);
}

async function busy(button, label, work) {
  const original = button.textContent;
  button.disabled = true;
  button.textContent = label;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.textContent = original;
    button.removeAttribute("aria-busy");
  }
}

// ---------------------------------------------------------------------------------------------
// Tabs (WAI-ARIA tabs pattern: arrow keys move between tabs, Tab moves into the panel).

function selectTab(tab) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
}

function setUpTabs() {
  const tabs = () => [...document.querySelectorAll('[role="tab"]')].filter((t) => !t.hidden);
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const visible = tabs();
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step || visible.length < 2) return;
      const next = visible[(visible.indexOf(tab) + step + visible.length) % visible.length];
      selectTab(next);
      next.focus();
      event.preventDefault();
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Sell

async function loadModels() {
  const select = $("sell-model");
  let body;
  try {
    body = await call("/models");
  } catch (error) {
    $("service-status").textContent = `The classifier is not available right now. ${error.message}`;
    return;
  }
  // Each model's kind comes from the catalogue (GET /models, GET /capabilities): a kind with a
  // route (capabilities.routes) can be asked from this page; a query encoder has none.
  const { routes, models } = state.capabilities;
  const reads = Object.fromEntries(models.map((m) => [m.name, m.reads]));
  state.models = body.models
    .filter((m) => m.servable && routes[m.kind])
    .map((m) => ({ name: m.name, kind: m.kind, reads: reads[m.name] }));
  for (const model of state.models) {
    const option = document.createElement("option");
    option.value = model.name;
    option.textContent = `${model.name} (reads the ${model.reads})`;
    select.append(option);
  }
  if (!state.models.length) {
    $("service-status").textContent = "No model is served right now: start the models (make serve) and reload.";
  }
}

// Which model answers: the one chosen, or (Automatic) the best one for what the seller gave.
function chooseModel(chosen, hasPhoto, hasText) {
  const served = (kind) => state.models.filter((m) => m.kind === kind);
  if (chosen) {
    const model = state.models.find((m) => m.name === chosen);
    if (model.kind === "image" && !hasPhoto) throw new UserMessage(`Choose a photo: ${chosen} reads the photo only.`);
    if (model.kind === "text" && !hasText) throw new UserMessage(`Type a title or description: ${chosen} reads text only.`);
    if (model.kind === "listing" && !hasPhoto && !hasText) throw new UserMessage("Choose a photo or type a title.");
    return model;
  }
  if (hasPhoto && hasText && served("listing").length) return served("listing")[0];
  if (hasPhoto) {
    const images = served("image");
    const preferred = images.find((m) => m.name === state.capabilities.default_model) || images[0];
    if (preferred) return preferred;
    if (served("listing").length) return served("listing")[0];
  }
  if (hasText && served("text").length) return served("text")[0];
  if (hasText && served("listing").length) return served("listing")[0];
  if (!state.models.length) throw new UserMessage("No model is served right now: try again later.");
  throw new UserMessage(hasText ? "Choose a photo: no text model is served yet." : "Choose a photo of the item first.");
}

// Each kind's route and the body it takes (JSON or a form) come from GET /capabilities.
async function predict(model, photo, title, description) {
  const route = state.capabilities.routes[model.kind];
  const path = `${route.path}?model=${encodeURIComponent(model.name)}`;
  if (route.body === "application/json") {
    return call(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ title, description }),
    });
  }
  const form = new FormData();
  if (photo && model.kind !== "text") form.append("image", photo);
  if (model.kind !== "image") {
    form.append("title", title);
    form.append("description", description);
  }
  return call(path, { method: "POST", body: form });
}

function renderPrediction(result, note = "") {
  $("sell-category").textContent = result.category;
  $("sell-model-used").textContent = `Model: ${result.model}${note}`;
  const bars = $("sell-bars");
  bars.replaceChildren();
  const ranked = Object.entries(result.probabilities).sort((a, b) => b[1] - a[1]);
  for (const [category, probability] of ranked) {
    const percent = (probability * 100).toFixed(1);
    const item = document.createElement("li");
    item.dataset.category = category;
    item.dataset.probability = String(probability);
    if (category === result.category) item.classList.add("best");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = category;
    const track = document.createElement("span");
    track.className = "track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${probability * 100}%`;
    track.append(fill);
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = `${percent} %`;
    item.append(name, track, pct);
    bars.append(item);
  }
  $("sell-result").hidden = false;
  document.dispatchEvent(new CustomEvent("aicore:suggested", { detail: result })); // sell.js
}

function setPhoto(input, preview, file) {
  if (preview.src) URL.revokeObjectURL(preview.src);
  const showable = file && (!file.type || file.type.startsWith("image/"));
  preview.hidden = !showable;
  if (showable) {
    preview.src = URL.createObjectURL(file);
    preview.alt = `Preview of ${file.name}`;
  } else {
    preview.removeAttribute("src");
  }
}

function setUpSell() {
  const input = $("sell-photo");
  const preview = $("sell-preview");
  const zone = $("drop-zone");
  input.addEventListener("change", () => setPhoto(input, preview, input.files[0]));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (!event.dataTransfer.files.length) return;
    input.files = event.dataTransfer.files;
    input.dispatchEvent(new Event("change"));
  });

  $("sell-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("sell-error");
    error.hidden = true;
    const photo = input.files[0] || null;
    const title = $("sell-title").value.trim();
    const description = $("sell-description").value.trim();
    try {
      checkPhoto(photo);
      const hasText = Boolean(title || description);
      const model = chooseModel($("sell-model").value, Boolean(photo), hasText);
      const result = await busy($("sell-submit"), "Classifying…", () => predict(model, photo, title, description));
      renderPrediction(result, hasText && model.kind === "image" ? " (it reads the photo only: the title and description were not used)" : "");
    } catch (caught) {
      $("sell-result").hidden = true;
      showError(error, caught);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Buy (GET /search, POST /search with a photo, GET /listings/{id}[/similar|/image]); the feed,
// impressions and clicks are in buy_feed.js. The proxy remembers the listings a buyer opened (its
// session cookie) and personalises /search and /feed with them: the page sends no viewed list.

const money = new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP" });

// The search answer is a list of listings, or an object holding one under "hits" or "results".
function listingsOf(body) {
  if (Array.isArray(body)) return body;
  return body.hits || body.results || body.listings || [];
}

// The retrievers that found a listing, said the way a buyer understands them.
const RETRIEVER_WORDS = { dense: "looks or reads like what you asked for", lexical: "has your words" };

function whyText(why) {
  if (!why) return "";
  if (Array.isArray(why)) return why.map((w) => RETRIEVER_WORDS[w] || w).join("; ");
  if (typeof why === "object") return Object.entries(why).map(([k, v]) => `${k}: ${v}`).join("; ");
  return String(why);
}

function textElement(tag, className, text) {
  const element = document.createElement(tag);
  element.className = className;
  element.textContent = text;
  return element;
}

// `context` ({source, query, ranker}): where the list came from, reported with a click.
function listingCard(listing, rank, context) {
  const item = document.createElement("li");
  item.className = "card";
  item.dataset.id = listing.id;
  item.dataset.rank = String(rank);
  const button = document.createElement("button");
  button.type = "button";
  const image = document.createElement("img");
  image.src = `/listings/${encodeURIComponent(listing.id)}/image`;
  image.alt = "";
  image.loading = "lazy";
  const body = document.createElement("span");
  body.className = "body";
  body.append(textElement("span", "title", listing.title || `Listing ${listing.id}`));
  if (listing.price != null) body.append(textElement("span", "price", money.format(listing.price)));
  const place = [listing.location, listing.category].filter(Boolean).join(" · ");
  if (place) body.append(textElement("span", "place", place));
  const why = whyText(listing.why ?? listing.reason ?? listing.matched);
  if (why) body.append(textElement("span", "why", `Why: ${why}`));
  button.append(image, body);
  button.addEventListener("click", () => {
    if (context) BuyFeed.clicked(listing.id, rank, context);
    showListing(listing.id);
  });
  item.append(button);
  return item;
}

function renderListings(list, listings, context = null) {
  list.replaceChildren(...listings.map((listing, i) => listingCard(listing, i + 1, context)));
}

function searchParams(k) {
  const params = new URLSearchParams({ k: String(k) });
  const fields = { q: "buy-q", min_price: "buy-min-price", max_price: "buy-max-price", near: "buy-near", category: "buy-category" };
  for (const [name, id] of Object.entries(fields)) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

async function search() {
  const photo = $("buy-photo").files[0] || null;
  checkPhoto(photo);
  const min = parseFloat($("buy-min-price").value);
  const max = parseFloat($("buy-max-price").value);
  if (min > max) throw new UserMessage(`The min price (£${min}) is above the max price (£${max}): swap them.`);
  const params = searchParams(24);
  if (!photo && !params.has("q") && !params.has("category")) {
    throw new UserMessage("Type what you are looking for, choose a photo, or pick a category.");
  }
  if (!photo) return call(`/search?${params}`);
  // The filters travel both in the URL and in the form: the route reads whichever it declares.
  const form = new FormData();
  form.append("image", photo);
  for (const [name, value] of params) form.append(name, value);
  return call(`/search?${params}`, { method: "POST", body: form });
}

async function showListing(id) {
  const detail = $("listing-detail");
  const error = $("buy-error");
  error.hidden = true;
  try {
    const [listing, similar] = await Promise.all([
      call(`/listings/${encodeURIComponent(id)}`),
      call(`/listings/${encodeURIComponent(id)}/similar?k=8`),
    ]);
    const body = $("detail-body");
    const image = document.createElement("img");
    image.src = `/listings/${encodeURIComponent(id)}/image`;
    image.alt = listing.title || `Listing ${id}`;
    body.replaceChildren(textElement("h3", "title", listing.title || `Listing ${id}`), image);
    if (listing.price != null) body.append(textElement("p", "price", money.format(listing.price)));
    const place = [listing.location, listing.category].filter(Boolean).join(" · ");
    if (place) body.append(textElement("p", "place", place));
    if (listing.description) body.append(textElement("p", "description", listing.description));
    const others = listingsOf(similar).filter((l) => String(l.id) !== String(id));
    const context = { source: "similar", ranker: similar.retriever };
    renderListings($("detail-similar"), others, context);
    BuyFeed.shown(others, context);
    $("buy-results").hidden = true;
    $("feed").hidden = true;
    detail.hidden = false;
    detail.focus();
  } catch (caught) {
    showError(error, caught);
  }
}

function setUpBuy(categories) {
  const select = $("buy-category");
  for (const category of categories) {
    const option = document.createElement("option");
    option.value = option.textContent = category;
    select.append(option);
  }
  $("buy-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("buy-error");
    error.hidden = true;
    $("listing-detail").hidden = true;
    const results = $("buy-results");
    results.hidden = false;
    try {
      const body = await busy($("buy-submit"), "Searching…", search);
      const listings = listingsOf(body);
      const context = { source: "search", query: $("buy-q").value.trim(), ranker: body.retriever };
      renderListings(results, listings, context);
      BuyFeed.shown(listings, context);
      $("buy-count").textContent = listings.length ? `${listings.length} listings` : "No listing matches: try fewer filters.";
    } catch (caught) {
      results.replaceChildren();
      $("buy-count").textContent = "";
      showError(error, caught);
    }
  });
  $("detail-close").addEventListener("click", () => {
    $("listing-detail").hidden = true;
    $("buy-results").hidden = false;
    $("feed").hidden = false;
    BuyFeed.load(); // the listing just opened moves the feed
    $("buy-results").querySelector("button")?.focus();
  });
}

// ---------------------------------------------------------------------------------------------

async function start() {
  setUpTabs();
  setUpSell();
  try {
    state.capabilities = await call("/capabilities");
  } catch (error) {
    $("service-status").textContent = error.message;
    return;
  }
  if (state.capabilities.search) {
    $("tab-buy").hidden = false;
    setUpBuy(state.capabilities.categories);
    BuyFeed.start();
  }
  document.dispatchEvent(new CustomEvent("aicore:ready", { detail: state.capabilities })); // sell.js
  await loadModels();
  document.body.dataset.ready = "true"; // the page finished asking the proxy what it offers
}

// Every deferred script (sell.js, buy_feed.js) has run before DOMContentLoaded; starting on it
// means start() never reaches BuyFeed or sell.js's listener before they exist (a fast
// /capabilities answer could beat a slow buy_feed.js download: "BuyFeed is not defined").
document.addEventListener("DOMContentLoaded", start);
