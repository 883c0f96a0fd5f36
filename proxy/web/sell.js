// Sell, part two: register as a seller, publish the listing, manage "My listings".
// Uses app.js's helpers ($, call, busy, showError, checkPhoto, messageFor, UserMessage, money);
// the seller's token stays in this browser (localStorage) and goes only to this proxy.
"use strict";

const SELLER_KEY = "aicore.seller";

function seller() {
  try {
    return JSON.parse(localStorage.getItem(SELLER_KEY) || "null");
  } catch {
    return null;
  }
}

// A seller's call: the token attached; 204 answers have no body; 401 forgets a stale token.
async function sellerCall(path, options = {}) {
  const me = seller();
  if (!me) throw new UserMessage("Register as a seller first.");
  let response;
  try {
    response = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${me.token}` } });
  } catch {
    throw new UserMessage(`Cannot reach the service at ${location.origin}: check that it is running and try again.`);
  }
  if (response.status === 401) {
    localStorage.removeItem(SELLER_KEY);
    showSeller();
    throw new UserMessage("Your seller token is no longer valid: register again.");
  }
  if (!response.ok) throw new UserMessage(await messageFor(response));
  return response.status === 204 ? null : response.json();
}

function showSeller() {
  const me = seller();
  $("seller-register").hidden = Boolean(me);
  $("publish-form").hidden = !me;
  $("my-listings-section").hidden = !me;
  $("seller-who").hidden = !me;
  if (me) $("seller-who-name").textContent = me.name;
}

async function register(event) {
  event.preventDefault();
  const error = $("publish-error");
  error.hidden = true;
  const name = $("seller-name").value.trim();
  try {
    if (!name) throw new UserMessage("Type your name first.");
    const body = await busy($("seller-register-submit"), "Registering…", () => call("/sellers", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name }),
    }));
    localStorage.setItem(SELLER_KEY, JSON.stringify({ id: body.id, name, token: body.token }));
    showSeller();
    await refreshMine();
  } catch (caught) {
    showError(error, caught);
  }
}

async function publish(event) {
  event.preventDefault();
  const error = $("publish-error");
  error.hidden = true;
  $("publish-result").hidden = true;
  const photo = $("sell-photo").files[0] || null;
  const form = new FormData();
  form.append("title", $("sell-title").value.trim());
  form.append("description", $("sell-description").value.trim());
  form.append("price", $("publish-price").value.trim());
  form.append("location", $("publish-location").value.trim());
  form.append("category", $("publish-category").value);
  if (photo) form.append("photos", photo);
  try {
    checkPhoto(photo);
    if (!$("sell-title").value.trim()) throw new UserMessage("Give the listing a title first.");
    // One key per click: a retried request never makes a second listing.
    const headers = { "Idempotency-Key": crypto.randomUUID ? crypto.randomUUID() : String(Math.random()) };
    const body = await busy($("publish-submit"), "Publishing…", () => sellerCall("/listings", { method: "POST", body: form, headers }));
    const link = $("publish-link");
    link.href = body.url;
    link.textContent = `${$("sell-title").value.trim()} (${body.category})`;
    $("publish-result").hidden = false;
    await refreshMine();
  } catch (caught) {
    showError(error, caught);
  }
}

function action(label, work) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.addEventListener("click", async () => {
    const error = $("mine-error");
    error.hidden = true;
    try {
      await busy(button, `${label}…`, work);
      await refreshMine();
    } catch (caught) {
      showError(error, caught);
    }
  });
  return button;
}

function mineItem(listing) {
  const item = document.createElement("li");
  item.className = "mine";
  item.dataset.id = listing.id;
  item.dataset.status = listing.status;
  const title = document.createElement("a");
  title.href = listing.url;
  title.textContent = listing.title;
  const facts = textElement("span", "muted", ` ${money.format(listing.price)} · ${listing.location} · ${listing.category} · ${listing.status}`);
  const price = document.createElement("input");
  price.type = "text";
  price.inputMode = "decimal";
  price.value = String(listing.price);
  price.setAttribute("aria-label", `New price of ${listing.title}`);
  const patch = (body) => sellerCall(`/listings/${encodeURIComponent(listing.id)}`, {
    method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  item.append(title, facts, price, action("Change price", () => patch({ price: price.value.trim() })));
  if (listing.status === "active") item.append(action("Mark sold", () => patch({ status: "sold" })));
  item.append(action("Delete", () => sellerCall(`/listings/${encodeURIComponent(listing.id)}`, { method: "DELETE" })));
  return item;
}

async function refreshMine() {
  if (!seller()) return;
  const list = $("my-listings");
  try {
    const body = await sellerCall("/sellers/me/listings");
    list.replaceChildren(...body.listings.map(mineItem));
    $("mine-empty").hidden = body.listings.length > 0;
  } catch (caught) {
    showError($("mine-error"), caught);
  }
}

function setUpPublish(categories) {
  const select = $("publish-category");
  for (const category of categories) {
    const option = document.createElement("option");
    option.value = option.textContent = category;
    select.append(option);
  }
  // app.js announces the suggestion: it becomes the (changeable) category of the listing
  document.addEventListener("aicore:suggested", (event) => {
    const category = event.detail.category;
    if (![...select.options].some((o) => o.value === category)) {
      const option = document.createElement("option");
      option.value = option.textContent = category;
      select.append(option);
    }
    select.value = category;
  });
  $("seller-register").addEventListener("submit", register);
  $("publish-form").addEventListener("submit", publish);
  $("publish").hidden = false;
  showSeller();
  refreshMine();
}

document.addEventListener("aicore:ready", (event) => {
  if (event.detail.search) setUpPublish(event.detail.categories);
});
