"""Builders for the text and multimodal tests: an unpacked text or listing archive."""

from pathlib import Path

import torch

from aicore.models import build_model, model_args, save_trained

# Small tables keep the tests fast; the features are the same as the default's, fewer buckets.
SMALL_TEXT = {"buckets": 4096, "char_ngrams": [3, 5], "word_ngrams": 2, "max_tokens": 400}


def write_model_dir(root: Path, arch: str, categories: list[str], image_size: int = 32,
                    seed: int = 0, **options: object) -> Path:
    """``root`` as the worker sees an unpacked archive: model.pt, model_args.json, labels."""
    root.mkdir(parents=True, exist_ok=True)
    if arch in ("text", "multimodal"):
        options.setdefault("text", SMALL_TEXT)
    torch.manual_seed(seed)
    args = model_args(arch, len(categories), image_size, **options)
    save_trained(root, build_model(**args), sorted(categories), args)
    return root
