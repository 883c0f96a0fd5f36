"""The seed-style architecture, kept only as the benchmark's comparison point (not the product).

What the original project shipped: one FastAPI process with the model loaded in-process, a sync
endpoint that decodes, preprocesses and runs one image per request (no batching), served by a
single uvicorn worker. It uses our preprocessing and weights so that only the architecture differs.

Run: ``AICORE_BASELINE_MODEL_DIR=runs/resnet50 uvicorn bench.baseline_app:app --port 8090``
"""

import os
from pathlib import Path
from typing import Annotated

import torch
from fastapi import FastAPI, File, HTTPException, UploadFile

from aicore.models import load_trained
from aicore.presets import EvalPreset, ImageDecodeError, load_image

MODEL_DIR = Path(os.environ.get("AICORE_BASELINE_MODEL_DIR", "runs/resnet50"))

model, class_names, model_args = load_trained(MODEL_DIR)
preset = EvalPreset(model_args["image_size"])
app = FastAPI(title="seed-style baseline (benchmark only)")


@app.post("/predict/image")
def predict_image(image: Annotated[UploadFile, File()]) -> dict:
    try:
        img = load_image(image.file.read(), model_args["image_size"])
    except ImageDecodeError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    with torch.inference_mode():
        probs = torch.softmax(model(preset(img).unsqueeze(0)), dim=1)[0]  # (num_classes,)
    values = probs.tolist()
    best = max(range(len(values)), key=values.__getitem__)
    return {"category": class_names[best], "probabilities": dict(zip(class_names, values, strict=True))}
