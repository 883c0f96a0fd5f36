"""The proxy's listing routes: classify a listing by its text, or by its photo and text.

- ``POST /predict/text``: JSON ``{"title", "description"}`` -> TorchServe's text model;
- ``POST /predict/listing``: multipart with an optional ``image`` file and ``title`` /
  ``description`` form fields -> TorchServe's listing (image + text) model.

Both answer ``{"category", "probabilities", "model"}`` with the error contract of
``/predict/image``: the handler's reasons for refusing a listing (empty, a field over its cap, an
undecodable photo) come back as 400 with its message; TorchServe down 503, slow 504, odd 502.
"""

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field

from common.catalogue import LISTING, TEXT
from common.codec import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS, ModelRequest
from proxy.deps import AppSettings, TorchServe, error_doc
from proxy.routes import PREDICT_ERRORS
from proxy.schemas import PredictResponse
from proxy.settings import Settings
from proxy.upload import read_upload

router = APIRouter()

# The request contract's caps (common.codec), checked here too: a field over its cap is a 422
# naming it before anything is forwarded, and the handler stays the second line.
TITLE_CAP, DESCRIPTION_CAP = MAX_TITLE_CHARS, MAX_DESCRIPTION_CHARS
LISTING_ERRORS: dict[int | str, dict[str, Any]] = {
    **PREDICT_ERRORS,
    400: error_doc("The listing is empty, a field is too long, or the photo cannot be decoded",
                "empty listing: it has no words to read; send a title or a description"),
    404: error_doc("The text or listing model is not served",
                "TorchServe has no model 'text' registered (...): build it with `make archive` "
                "and restart with `make serve`; GET /models lists what is served"),
}


class TextListing(BaseModel):
    """A listing's text. Either field may be empty, not both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"title": "Dyson V8 cordless hoover - barely used | in Leeds",
             "description": "Barely used, comes with 2 attachments. £80 ono. Collection only."},
            {"title": "Ikea desk lamp", "description": ""},
        ]},
    )

    title: str = Field("", max_length=TITLE_CAP,
                        description=f"the listing's title (at most {TITLE_CAP} characters)")
    description: str = Field(
        "", max_length=DESCRIPTION_CAP,
        description=f"the listing's description (at most {DESCRIPTION_CAP} characters)"
    )


@router.post(
    "/predict/text",
    response_model=PredictResponse,
    responses=LISTING_ERRORS,
    summary="Classify a listing by its title and description",
    tags=["predict"],
)
async def predict_text(listing: TextListing, torchserve: TorchServe,
                       settings: AppSettings) -> PredictResponse:
    """Send the text to TorchServe's text model; returns its category and every probability.

    Example: `curl -H 'Content-Type: application/json' -d '{"title": "Ikea desk lamp",
    "description": "barely used"}' http://127.0.0.1:8000/predict/text`
    """
    model = served_model(settings, TEXT)
    prediction = await torchserve.predict(
        model, ModelRequest(title=listing.title, description=listing.description))
    return PredictResponse(category=prediction.category,
                           probabilities=prediction.probabilities, model=model)


@router.post(
    "/predict/listing",
    response_model=PredictResponse,
    responses=LISTING_ERRORS,
    summary="Classify a listing by its photo and text (either may be missing)",
    tags=["predict"],
)
async def predict_listing(
    torchserve: TorchServe,
    settings: AppSettings,
    image: Annotated[UploadFile | None, File(description="the listing photo (optional)")] = None,
    title: Annotated[str, Form(max_length=TITLE_CAP,
                                description=f"the title (at most {TITLE_CAP} characters)")] = "",
    description: Annotated[
        str, Form(max_length=DESCRIPTION_CAP,
                   description=f"the description (at most {DESCRIPTION_CAP} characters)")
    ] = "",
) -> PredictResponse:
    """Send photo and text to TorchServe's listing model (image + text in one head).

    Example: `curl -F image=@photo.jpg -F title='Ikea desk lamp' -F description='barely used'
    http://127.0.0.1:8000/predict/listing`
    """
    model = served_model(settings, LISTING)
    data = None
    # A browser form with no file chosen sends an empty part without a file name: no photo.
    if image is not None and (image.filename or image.size):
        data = await read_upload(image, settings.max_upload_bytes)
    prediction = await torchserve.predict(
        model, ModelRequest(image=data, title=title, description=description))
    return PredictResponse(category=prediction.category,
                           probabilities=prediction.probabilities, model=model)


def served_model(settings: Settings, kind: str) -> str:
    """The model the route of ``kind`` sends to; 404 when the proxy serves none of that kind."""
    model = settings.model_of_kind(kind)
    if model is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"this proxy serves no {kind} model: add one to config.properties' model_snapshot "
            f"(and AICORE_MODELS), build it with `make archive` and restart with `make serve`; "
            "GET /models lists what is served")
    return model
