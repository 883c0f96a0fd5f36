"""Request and answer bodies of the sellers' routes (proxy/market_routes.py), for /docs."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.codec import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS

MAX_NAME_CHARS = 80


class SellerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Ada"}]})

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS,
                      description=f"the seller's display name (1-{MAX_NAME_CHARS} characters)")


class SellerToken(BaseModel):
    """A seller and its token: shown once (only its hash is stored), send it as
    ``Authorization: Bearer <token>`` on every write."""

    id: str
    token: str


class CreatedListing(BaseModel):
    """``POST /listings``' answer (a retry with the same ``Idempotency-Key`` gets it again)."""

    id: str
    category: str = Field(description="the category given, or the model's suggestion")
    suggested: dict[str, float] = Field(
        description="the model's most likely categories with their probabilities (empty when no "
                    "classifying model is served)")
    url: str = Field(description="the listing's record: GET it")


class ListingPatch(BaseModel):
    """Any of a listing's fields; the others stay."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"price": "£80"}, {"status": "sold"}, {"title": "Dyson V8 - like new", "category": "Appliances"}]})

    title: str | None = Field(None, min_length=1, max_length=MAX_TITLE_CHARS)
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_CHARS)
    price: str | float | None = Field(None, description="as the export writes it: \"£1,234.50\", "
                                      "\"80\" or a number")
    location: str | None = Field(None, max_length=200, description="a known place, \"Town, Region\"")
    category: str | None = Field(None, max_length=200)
    status: Literal["active", "sold"] | None = Field(
        None, description="sold: the listing leaves search (it stays in GET /sellers/me/listings)")


class SellerListing(BaseModel):
    id: str
    title: str
    description: str
    price: float
    location: str
    category: str
    status: str
    photos: int
    created: float
    updated: float
    version: int = Field(description="1 at creation, +1 per edit")
    url: str


class SellerListings(BaseModel):
    listings: list[SellerListing]


class FieldError(BaseModel):
    """A 422: a field the route checked (``"price: ..."``, the field's name first), or FastAPI's
    own list of malformed fields (``[{"loc": ["body", "price"], "msg": ...}]``)."""

    detail: str | list[dict[str, Any]]
