"""Sellers publish, edit and sell listings: ``/sellers``, ``POST/PATCH/DELETE /listings``.

A write is answered only after it is committed to ``market.db`` (and its photos fsynced before
that): the 201 is a promise that survives a crash. The new state is then applied to this
process's live search overlay before the answer leaves, and every other proxy process over the
same store sees it at its next search (docs/marketplace.md).
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, HTTPException, Request, UploadFile, status
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from aicore.presets import ImageDecodeError
from common.codec import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS
from common.prices import parse_price
from market.photos import clean_photo
from market.store import NewListing, StoredListing
from proxy.deps import AppSettings, Engine, TorchServe, error_doc
from proxy.market import MarketDep, Seller, client_address, limit, stored_vectors, suggest
from proxy.market_schemas import (CreatedListing, FieldError, ListingPatch, SellerIn,
                                  SellerListing, SellerListings, SellerToken)
from proxy.search_routes import SEARCH_ERRORS, check_served_model, encoder_weights
from proxy.upload import read_upload
from search import SearchEngine
from search.embedders import TEXT

logger = logging.getLogger(__name__)
router = APIRouter(tags=["sell"])

MAX_PHOTOS = 10
MAX_PRICE = 10_000_000.0  # GBP: a typo guard, not a business rule
MAX_IDEMPOTENCY_KEY = 200

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: error_doc("No seller token, or one no seller has", "the seller token is not valid "
                   "(rotated, or mistyped): use the latest token POST /sellers or POST "
                   "/sellers/me/token gave"),
    429: error_doc("Too many writes from this seller (Retry-After says when to retry)",
                   "too many listing writes: retry in 1 s"),
}
STORE_ERROR = error_doc("The store cannot be written (nothing was saved; retry)",
                        "the marketplace store (market.db in AICORE_STATE_DIR) cannot be used "
                        "(OperationalError: disk I/O error): nothing was saved; retry, and check "
                        "the disk if it persists")
AUTH_ERRORS[503] = STORE_ERROR
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    400: error_doc("A photo cannot be decoded, or the body cannot be parsed",
                   "photos[0] ('a.jpg'): not an image: 12 bytes ..."),
    403: error_doc("The listing is another seller's", "listing 'live-..' belongs to another "
                   "seller: a seller changes only their own listings"),
    404: error_doc("No listing with that id", "no listing 'live-..': GET /sellers/me/listings "
                   "lists yours"),
    413: SEARCH_ERRORS[413],
    422: {"model": FieldError, "description": "A field is missing or wrong; the answer names it",
          "content": {"application/json": {"example": {
              "detail": "price: 'free' is not a price: write it as the export does, e.g. "
                        "£1,234.50 or 80"}}}},
    503: error_doc("TorchServe cannot embed or classify the listing, or no index is served "
                   "(nothing was stored: retry later)", "TorchServe is not reachable at "
                   "<AICORE_INFERENCE_URL>: start it with `make serve`"),
}


@router.post("/sellers", status_code=status.HTTP_201_CREATED, response_model=SellerToken,
             responses={400: error_doc("The body is not JSON", "There was an error parsing "
                                       "the body"),
                        429: AUTH_ERRORS[429], 503: STORE_ERROR}, summary="Register as a seller")
async def register(body: SellerIn, request: Request, market: MarketDep) -> SellerToken:
    """A new seller and its token. The token is shown in this answer only (the store keeps its
    SHA-256): keep it, and send it as `Authorization: Bearer <token>` on every write.
    Registrations are rate limited per client address (429 + Retry-After)."""
    limit(market.registrations, client_address(request), "seller registrations from this address")
    seller_id, token = await run_in_threadpool(market.store.create_seller, body.name.strip())
    return SellerToken(id=seller_id, token=token)


@router.post("/sellers/me/token", response_model=SellerToken, responses=AUTH_ERRORS,
             summary="Rotate the seller's token")
async def rotate(seller: Seller, market: MarketDep) -> SellerToken:
    """A new token for the calling seller; the old one stops working now."""
    limit(market.writes, seller, "listing writes")
    return SellerToken(id=seller, token=await run_in_threadpool(market.store.rotate_token, seller))


@router.get("/sellers/me/listings", response_model=SellerListings, responses=AUTH_ERRORS,
            summary="The seller's listings, sold ones included")
async def my_listings(seller: Seller, market: MarketDep) -> SellerListings:
    listings = await run_in_threadpool(market.store.listings_of, seller)
    return SellerListings(listings=[_public(listing) for listing in listings])


@router.post("/listings", status_code=status.HTTP_201_CREATED, response_model=CreatedListing,
             responses=WRITE_ERRORS, summary="Publish a listing")
async def create_listing(
    request: Request, seller: Seller, market: MarketDep, engine: Engine,
    torchserve: TorchServe, settings: AppSettings,
    title: Annotated[str, Form(max_length=MAX_TITLE_CHARS, description="the title")],
    price: Annotated[str, Form(max_length=50, description="as the export writes it: £1,234.50, "
                               "£5 or 80")],
    location: Annotated[str, Form(max_length=200, description="a known place: \"Town, Region\" "
                                  "(\"Leeds, West Yorkshire\") or a town or region the index has")],
    description: Annotated[str, Form(max_length=MAX_DESCRIPTION_CHARS)] = "",
    category: Annotated[str, Form(max_length=200, description="a root category (default: the "
                                  "model's suggestion)")] = "",
    photos: Annotated[list[UploadFile], File(description=f"0-{MAX_PHOTOS} photos; metadata "
                                             "(EXIF, GPS) is stripped")] = [],  # noqa: B006
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", max_length=MAX_IDEMPOTENCY_KEY,
        description="a retried POST with the same key gets the first answer, not a second "
                    "listing")] = None,
) -> JSONResponse:
    """Publish a listing: stored durably, then found by `/search` (text and photo), filters and
    `/listings/{id}/similar` at once. Without `category`, the model's suggestion is used;
    `suggested` lists the model's top categories either way."""
    limit(market.writes, seller, "listing writes")
    if idempotency_key is not None:
        first = await run_in_threadpool(market.store.answer_of, seller, idempotency_key)
        if first is not None:
            return JSONResponse(first, status_code=status.HTTP_201_CREATED)
    title, description = _title(title), description.strip()
    fields = {"price": _price(price), "location": _location(engine, location)}
    cleaned = await _photos(photos, settings.max_upload_bytes)
    suggested = await suggest(torchserve, settings, title, description, cleaned)
    chosen = (_category(engine, category, suggested) if category.strip()
              else next(iter(suggested), None))
    if chosen is None:
        raise _field("category", "no model is served to suggest one: send a category, one of "
                     f"{', '.join(engine.categories)}")
    vectors = await _vectors(request, torchserve, engine, settings, title, description, cleaned)
    names = [await run_in_threadpool(market.photos.write, photo) for photo in cleaned]
    new = NewListing(title, description, fields["price"], fields["location"], chosen, names,
                     **vectors)
    _, answer = await run_in_threadpool(market.store.create_listing, seller, new,
                                        {"category": chosen, "suggested": suggested},
                                        idempotency_key)
    await _publish(request)
    return JSONResponse(answer, status_code=status.HTTP_201_CREATED)


@router.patch("/listings/{listing_id:path}", response_model=SellerListing, responses=WRITE_ERRORS,
              summary="Edit a listing, or mark it sold")
async def edit_listing(listing_id: str, patch: ListingPatch, request: Request, seller: Seller,
                       market: MarketDep, engine: Engine, torchserve: TorchServe,
                       settings: AppSettings) -> SellerListing:
    """Change any of title, description, price, location, category, status (`sold` takes it out
    of search within a second; `active` puts it back). Search sees the edit at once."""
    limit(market.writes, seller, "listing writes")
    listing = await _own(market, seller, listing_id)
    changes = patch.model_dump(exclude_unset=True)
    changes = {key: value for key, value in changes.items() if value is not None}
    if not changes:
        raise _field("body", "nothing to change: send any of title, description, price, "
                     "location, category, status")
    if "title" in changes:
        changes["title"] = _title(changes["title"])
    if "description" in changes:
        changes["description"] = changes["description"].strip()
    if "price" in changes:
        changes["price"] = _price(changes["price"])
    if "location" in changes:
        changes["location"] = _location(engine, changes["location"])
    if "category" in changes:
        changes["category"] = _category(engine, changes["category"], {})
    vectors: dict = {}
    if {"title", "description"} & set(changes):  # the vectors the text made are made again
        # the index's model only where it reads the text (a photo index's vector stays)
        photos = ([await run_in_threadpool(market.photos.path(name).read_bytes)
                   for name in listing.photos] if TEXT in engine.modalities else None)
        vectors = await _vectors(request, torchserve, engine, settings,
                                 changes.get("title", listing.title),
                                 changes.get("description", listing.description), photos)
    updated = await run_in_threadpool(market.store.update_listing, listing_id, changes,
                                      **vectors)
    if updated is None:  # deleted between the ownership check and the update
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no listing {listing_id[:100]!r}: it "
                            "was deleted")
    await _publish(request)
    return _public(updated)


@router.delete("/listings/{listing_id:path}", status_code=status.HTTP_204_NO_CONTENT,
               responses=WRITE_ERRORS, summary="Delete a listing")
async def delete_listing(listing_id: str, request: Request, seller: Seller,
                         market: MarketDep) -> Response:
    """Delete the listing and its photos; it leaves search at once."""
    limit(market.writes, seller, "listing writes")
    await _own(market, seller, listing_id)
    unused = await run_in_threadpool(market.store.delete_listing, listing_id)
    await run_in_threadpool(market.photos.remove, unused)  # after the commit: a crash leaves
    await _publish(request)                                # orphans, swept at the next start
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- helpers -----------------------------------------------------------------------------------

def _field(name: str, message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name}: {message}")


def _title(value: str) -> str:
    if not value.strip():
        raise _field("title", "is empty: give the listing a title")
    return value.strip()


def _price(value: str | float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        price = float(value)
    else:
        price = parse_price(str(value))
    if price is None or not math.isfinite(price) or not 0 <= price <= MAX_PRICE:
        raise _field("price", f"{str(value)[:50]!r} is not a price: write it as the export does, "
                     f"e.g. £1,234.50 or 80 (at most £{MAX_PRICE:,.0f})")
    return price


def _location(engine: SearchEngine, value: str) -> str:
    if not value.strip() or not engine.places.knows(value):
        close = engine.places.close(value)
        hint = (f"did you mean {', '.join(map(repr, close))}?" if close
                else f"known places include {', '.join(map(repr, engine.places.known[:10]))}")
        raise _field("location", f"{value[:100]!r} is not a place the marketplace knows; {hint}")
    return value.strip()


def _category(engine: SearchEngine, value: str, suggested: dict[str, float]) -> str:
    for name in sorted({*engine.categories, *suggested}):
        if name.casefold() == value.strip().casefold():
            return name
    raise _field("category", f"unknown category {value[:100]!r}: choose one of "
                 f"{', '.join(engine.categories)}")


async def _photos(uploads: list[UploadFile], limit_bytes: int) -> list[bytes]:
    """The uploaded photos, each decoded within the upload limits and re-encoded bare."""
    # A browser form with no file chosen sends an empty part without a file name: no photo.
    files = [upload for upload in uploads if upload.filename or upload.size]
    if len(files) > MAX_PHOTOS:
        raise _field("photos", f"{len(files)} photos: send at most {MAX_PHOTOS}")
    cleaned = []
    for i, upload in enumerate(files):
        data = await read_upload(upload, limit_bytes)
        try:
            cleaned.append(await run_in_threadpool(clean_photo, data))
        except ImageDecodeError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST,
                                f"photos[{i}] ({upload.filename!r}): {exc}") from None
    return cleaned


async def _vectors(request: Request, torchserve: TorchServe, engine: SearchEngine,
                   settings: AppSettings, title: str, description: str,
                   photos: list[bytes] | None) -> dict[str, bytes | str | None]:
    """:func:`proxy.market.stored_vectors`, after checking that TorchServe serves the weights
    the index was built with (503 otherwise): its model (when ``photos`` is given) and its
    text encoder."""
    model = settings.search_model or engine.info.served_model
    if photos is not None:
        await check_served_model(request, torchserve, engine, model)
    encoder = engine.info.text_encoder
    if encoder is not None:
        await check_served_model(request, torchserve, engine, *encoder_weights(encoder))
    return await stored_vectors(torchserve, engine, model, title, description, photos)


async def _own(market: MarketDep, seller: str, listing_id: str) -> StoredListing:
    listing = await run_in_threadpool(market.store.listing, listing_id)
    if listing is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no listing {listing_id[:100]!r}: GET "
                            "/sellers/me/listings lists yours")
    if listing.seller_id != seller:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"listing {listing_id!r} belongs to "
                            "another seller: a seller changes only their own listings")
    return listing


async def _publish(request: Request) -> None:
    """Apply the committed write to this process's search overlay before answering."""
    live = request.app.state.search.live
    if live is not None:
        await run_in_threadpool(live.catch_up)


def _public(listing: StoredListing) -> SellerListing:
    return SellerListing(**listing.public(), url=f"/listings/{listing.id}")
