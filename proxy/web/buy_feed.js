// Buy: the "for you" feed (GET /feed), what the buyer saw and clicked (POST /events), and
// "Clear my history" (DELETE /me/history). The session is an HttpOnly cookie the proxy sets:
// this script never sees its id. Loaded after app.js, whose helpers ($, call, renderListings,
// showError) it uses; app.js calls BuyFeed.start() once the proxy says it has search.
"use strict";

const BuyFeed = (() => {
  const FEED_SIZE = 12;

  // Fire-and-forget: an event must not slow the page down or fail it, and keepalive lets the
  // request finish while the page moves on (a click that opens a listing). One at a time: the
  // first event of a new visitor creates its session, and the next must carry that cookie
  // rather than create a second session.
  let sending = Promise.resolve();

  function report(event) {
    sending = sending.then(() => fetch("/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(event),
      keepalive: true,
      credentials: "same-origin",
    })).catch(() => {});
  }

  // Report that `listings` were shown, best first; `context` = {source, query, ranker}.
  function shown(listings, context) {
    if (!listings.length) return;
    report({ type: "impression", listings: listings.slice(0, 100).map((l) => String(l.id)),
             source: context.source, query: context.query || null, ranker: context.ranker || null });
  }

  function clicked(id, rank, context) {
    if (rank > 100) return;
    report({ type: "click", listing: String(id), rank, source: context.source,
             query: context.query || null, ranker: context.ranker || null });
  }

  async function load() {
    const section = $("feed");
    const error = $("feed-error");
    error.hidden = true;
    try {
      const body = await call(`/feed?k=${FEED_SIZE}`);
      const context = { source: "feed", ranker: body.ranker };
      renderListings($("feed-results"), body.results, context);
      $("feed-note").textContent = body.personalised
        ? "Picked from what you opened recently."
        : "Popular and new listings: open a few and this list follows your taste.";
      section.dataset.personalised = String(body.personalised);
      shown(body.results, context);
    } catch (caught) {
      showError(error, caught);
    }
  }

  async function clear() {
    const error = $("feed-error");
    try {
      await call("/me/history", { method: "DELETE" });
      await load();
      $("feed-note").textContent = "Your history is cleared: nothing you opened is remembered.";
    } catch (caught) {
      showError(error, caught);
    }
  }

  function start() {
    $("feed-clear").addEventListener("click", clear);
    $("tab-buy").addEventListener("click", load);
    load();
  }

  return { start, load, shown, clicked };
})();
