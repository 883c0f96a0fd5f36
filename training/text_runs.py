"""What ``training.train`` adds for the text and multimodal models.

- the options that become their model arguments (the featuriser, the image encoder);
- starting a multimodal image encoder from a finished image run;
- the classic reference every text run reports in ``metrics.json``: scikit-learn TF-IDF (word
  uni/bigrams + character 3-5-grams of the same cleaned text) and logistic regression, trained on
  the run's training rows and tested on its test rows.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline, make_union
from torch import nn

from aicore.models import MODEL_ARGS_FILE, MODEL_FILE
from aicore.text import DEFAULT_BUCKETS, DEFAULT_CHAR_NGRAMS, MAX_TOKENS, listing_tokens
from common.cli import UserError
from common.dataset_format import CleanDataset
from training.listing_data import read_listing_text
from training.sparse_adagrad import SparseAdagrad

# Learning rates per model: SGD for the image models, Adagrad for the text ones (measured on the
# demo data, see docs/text.md).
DEFAULT_LR = {"cnn": 0.08, "resnet50": 0.08, "text": 0.2, "multimodal": 0.01}
TABLE_LR = DEFAULT_LR["text"]  # the multimodal model's text table
TEXT_ARCHS = ("text", "multimodal")
# The TF-IDF reference's vocabulary caps (word n-grams, character n-grams): see text_reference.
REFERENCE_MAX_FEATURES = (2**16, 2**17)


def text_optimizer(model: nn.Module, config: dict) -> torch.optim.Optimizer:
    """Adagrad, the classic optimiser for sparse features.

    A listing's embedding is the mean of ~100-400 feature vectors, so each row's gradient is tiny
    and rare words get few updates: plain SGD at the image models' lr did not move the loss in 10
    epochs (lr 2 to 50: stuck at chance or diverging); Adagrad scales each row's step by its own
    gradient history and reached TF-IDF's accuracy in 2 epochs. It takes the embedding table's
    sparse gradients: :class:`training.sparse_adagrad.SparseAdagrad` is torch's Adagrad (same
    maths, same state) with a step that touches only those rows: 2.4x less CPU per step, and 5
    epochs of 10,000 listings in 36-39 s instead of 48 s (docs/benchmarks.md).
    In the multimodal model the text table learns at ``TABLE_LR`` while the image encoder and
    the fusion layers take ``--lr``: one Adagrad step moves every weight by about its lr at first,
    which a CNN at the table's 0.2 does not survive (measured: loss 3.6 after one epoch).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if config["model"] != "multimodal":
        return SparseAdagrad(params, lr=config["lr"])
    table = [model.text.bag.weight]
    rest = [p for p in params if p is not model.text.bag.weight]
    return SparseAdagrad([{"params": table, "lr": TABLE_LR, "peak_lr": TABLE_LR},
                         {"params": rest}], lr=config["lr"])


def text_recipe(arch: str) -> dict:
    """The recipe options of the text and multimodal models, whatever ``--recipe`` says about
    optimisation: Adagrad at the measured lr with the original step schedule (x0.5 every 3
    epochs), no weight decay (Adagrad's sparse updates take none) and no label smoothing."""
    return {"optimizer": "adagrad", "lr": DEFAULT_LR[arch], "momentum": 0.0, "nesterov": False,
            "weight_decay": 0.0, "label_smoothing": 0.0, "schedule": "step", "warmup_epochs": 0,
            "step_size": 3, "gamma": 0.5}


def check_text_args(args: argparse.Namespace) -> None:
    """Refuse options that do not apply to ``args.model``."""
    if args.model != "multimodal" and (args.image_init is not None or args.image_arch != "cnn"):
        raise UserError(f"--image-arch and --image-init apply to --model multimodal only, not "
                       f"{args.model}")
    if args.model in TEXT_ARCHS and (args.momentum or args.weight_decay):
        raise UserError(f"--momentum and --weight-decay apply to SGD; --model {args.model} trains "
                       "with Adagrad (sparse embedding gradients)")
    if args.model not in TEXT_ARCHS and args.buckets != DEFAULT_BUCKETS:
        raise UserError(f"--buckets applies to --model text or multimodal only, not {args.model}")
    if args.model != "multimodal" and getattr(args, "text_init", None) is not None:
        raise UserError(f"--text-init applies to --model multimodal only, not {args.model}")
    if args.image_init is not None and not (Path(args.image_init) / MODEL_FILE).is_file():
        raise UserError(f"--image-init {args.image_init} is not a finished image run "
                       f"({MODEL_FILE} is missing): train one with --model {args.image_arch}")


def text_model_options(config: dict) -> dict:
    """The text/multimodal model arguments from a resolved config (``{}`` for image models)."""
    if config["model"] not in TEXT_ARCHS:
        return {}
    text = {"buckets": config["buckets"], "char_ngrams": list(DEFAULT_CHAR_NGRAMS),
            "word_ngrams": 2, "max_tokens": MAX_TOKENS}
    # idf-weighted mean of the features (aicore.text_models.TextEncoder), set by fit_idf
    if config["model"] == "text":
        return {"text": text, "idf": True}
    return {"text": text, "image_arch": config["image_arch"], "idf": True}


def fit_idf(model: nn.Module, features: list[list[int]]) -> None:
    """Set a text or multimodal model's idf weights from its training samples' feature ids.

    Args:
        model: a :class:`aicore.text_models.TextClassifier` or ``MultimodalClassifier`` built
            with ``idf=True``.
        features: each training sample's ids (a feature counts once per sample).
    """
    buckets = model.featurizer.buckets
    present = [np.unique(np.asarray(ids, dtype=np.int64)) for ids in features]
    flat = np.concatenate(present) if present else np.zeros(0, dtype=np.int64)
    frequency = torch.from_numpy(np.bincount(flat, minlength=buckets))  # (buckets,)
    encoder = model.encoder if hasattr(model, "encoder") else model.text
    encoder.set_idf(frequency, len(features))


def init_image_encoder(model: nn.Module, run_dir: Path, image_arch: str) -> None:
    """Load a finished image run's best weights into the multimodal model's image encoder.

    Raises:
        UserError: if the run holds another architecture or a different number of classes.
    """
    state = torch.load(run_dir / MODEL_FILE, map_location="cpu", weights_only=True)
    try:
        model.image.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"--image-init {run_dir}: its {MODEL_FILE} does not fit a {image_arch} "
                       f"image encoder for this dataset ({str(exc).splitlines()[0]})") from None
    print(f"image encoder initialised from {run_dir / MODEL_FILE}")


def init_text_encoder(model: nn.Module, run_dir: Path) -> None:
    """Load a finished text run's encoder (embedding table and idf weights) into the multimodal
    model's text encoder, so fusion starts from a text side that already reads listings.

    Raises:
        UserError: if the run is not a text run with idf weights and the same featuriser.
    """
    args_path, weights_path = run_dir / MODEL_ARGS_FILE, run_dir / MODEL_FILE
    if not (args_path.is_file() and weights_path.is_file()):
        raise UserError(f"--text-init {run_dir} is not a finished text run ({MODEL_FILE} or "
                       f"{MODEL_ARGS_FILE} is missing)")
    saved = json.loads(args_path.read_text(encoding="utf-8"))
    if saved.get("arch") != "text" or not saved.get("idf"):
        raise UserError(f"--text-init {run_dir} holds a {saved.get('arch')!r} model"
                       f"{'' if saved.get('idf') else ' without idf weights'}: train one with "
                       "--model text")
    if saved.get("text") != model.featurizer.config():
        raise UserError(f"--text-init {run_dir} hashes text with {saved.get('text')}, this run "
                       f"with {model.featurizer.config()}: use the same --buckets")
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.text.load_state_dict({"bag.weight": state["encoder.bag.weight"],
                                "idf": state["encoder.idf"]})
    print(f"text encoder initialised from {weights_path}")


def _joined_tokens(data: CleanDataset, ids: list[str]) -> tuple[list[str], list[str]]:
    """The cleaned, tokenised text of each row (the same tokens the text model reads)."""
    text = read_listing_text(data)
    rows = data.manifest.set_index("image_id").loc[ids]
    docs = [" ".join(listing_tokens(*text[pid])[0]) for pid in rows["product_id"]]
    return docs, list(rows["category"])


def text_reference(data: CleanDataset, split: dict[str, list[str]]) -> dict:
    """TF-IDF + logistic regression on the run's split: test accuracy and how long it took.

    Kept cheap without weakening it: float32 matrices, and each vectoriser keeps its most
    frequent n-grams up to :data:`REFERENCE_MAX_FEATURES`. Measured (CPU seconds, one thread):
    on the synthetic long listings of ``bench.text`` (5,000 listings, 325k n-grams) the cap cuts
    the solver's time from 24 s to 5 s at the same accuracy (0.984); on ``make textdevset`` (43k
    n-grams, under the cap) nothing changes but float32 (3.5 -> 2.9 s, same accuracy on 3 seeds).
    ``min_df=2`` was faster still but cost 1-1.5 points of accuracy on the short real text.
    """
    started = time.perf_counter()
    train_docs, train_labels = _joined_tokens(data, split["train"])
    test_docs, test_labels = _joined_tokens(data, split["test"])
    words, chars = REFERENCE_MAX_FEATURES
    features = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                        token_pattern=r"\S+", max_features=words, dtype=np.float32),
        TfidfVectorizer(analyzer="char_wb", ngram_range=DEFAULT_CHAR_NGRAMS, sublinear_tf=True,
                        max_features=chars, dtype=np.float32))
    pipeline = make_pipeline(features, LogisticRegression(C=10.0, max_iter=2000))
    pipeline.fit(train_docs, train_labels)
    predicted = pipeline.predict(test_docs)
    correct = sum(p == t for p, t in zip(predicted, test_labels, strict=True))
    result = {"test_accuracy": correct / len(test_labels) if test_labels else 0.0,
              "model": f"TfidfVectorizer(word 1-2 (top {words}) + char_wb 3-5 (top {chars}), "
                       "sublinear tf, float32) + LogisticRegression(C=10)",
              "seconds": round(time.perf_counter() - started, 2)}
    print(f"reference TF-IDF + logistic regression: test accuracy {result['test_accuracy']:.4f} "
          f"({result['seconds']:.1f} s)")
    return result
