"""Request and response bodies of the proxy's API, with the examples /docs shows."""

from pydantic import BaseModel, ConfigDict, Field

_PROBABILITIES_EXAMPLE = {
    "Appliances": 0.004,
    "Baby & Kids Stuff": 0.011,
    "Clothes, Footwear & Accessories": 0.006,
    "Computers & Software": 0.013,
    "DIY Tools & Materials": 0.009,
    "Health & Beauty": 0.005,
    "Home & Garden": 0.874,
    "Music, Films, Books & Games": 0.012,
    "Office Furniture & Equipment": 0.031,
    "Other Goods": 0.015,
    "Phones, Mobile Phones & Telecoms": 0.004,
    "Sports, Leisure & Travel": 0.010,
    "Video Games & Consoles": 0.006,
}


class PredictResponse(BaseModel):
    """The category of one listing image."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "category": "Home & Garden",
                    "probabilities": _PROBABILITIES_EXAMPLE,
                    "model": "resnet50",
                }
            ]
        }
    )

    category: str = Field(description="the most likely root category")
    probabilities: dict[str, float] = Field(
        description="the probability of every category the model knows (they sum to 1)"
    )
    model: str = Field(description="the TorchServe model that answered")


class ErrorResponse(BaseModel):
    """Every error: ``detail`` says what went wrong and what to change."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"detail": "Unknown model 'vgg': choose one of cnn, resnet50"}]
        }
    )

    detail: str


class ModelHealth(BaseModel):
    """Whether one model can answer now."""

    name: str
    ready: bool = Field(description="at least one worker is READY")
    version: str | None = Field(None, description="the default version TorchServe serves")
    workers_ready: int = 0
    workers_total: int = 0
    detail: str | None = Field(None, description="why it is not ready")


class TorchServeHealth(BaseModel):
    url: str = Field(description="TorchServe's inference address")
    status: str | None = Field(None, description="TorchServe's answer to /ping; null if none")
    detail: str | None = Field(None, description="why TorchServe could not be asked")


class HealthResponse(BaseModel):
    """The proxy's view of TorchServe; HTTP 200 when ``ready``, 503 with this same body when not."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ready": True,
                    "torchserve": {"url": "http://127.0.0.1:8080", "status": "Healthy", "detail": None},
                    "models": [
                        {"name": "cnn", "ready": True, "version": "1.0", "workers_ready": 1,
                         "workers_total": 1, "detail": None},
                        {"name": "resnet50", "ready": True, "version": "1.0", "workers_ready": 1,
                         "workers_total": 1, "detail": None},
                    ],
                }
            ]
        }
    )

    ready: bool = Field(description="TorchServe is healthy and every model has a READY worker")
    torchserve: TorchServeHealth
    models: list[ModelHealth]


class ModelInfo(BaseModel):
    name: str
    versions: list[str] = Field(description="every version TorchServe has registered")
    kind: str | None = Field(
        None, description="image, text, listing or query (config.properties' model_snapshot); "
        "null for a model TorchServe serves that this proxy does not")
    servable: bool = Field(description="this proxy serves it: an image model on POST "
                           "/predict/image?model=, the others on the route of their kind")


class ModelsResponse(BaseModel):
    """What TorchServe serves, from its management API."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "default_model": "resnet50",
                    "models": [
                        {"name": "cnn", "versions": ["20261201-1a2b3c4d-onnx-int8"],
                         "kind": "image", "servable": True},
                        {"name": "text", "versions": ["20261201-5e6f7a8b-eager"],
                         "kind": "text", "servable": True},
                    ],
                }
            ]
        }
    )

    default_model: str = Field(description="the model used when a request names none")
    models: list[ModelInfo]
