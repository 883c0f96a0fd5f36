"""The end of a training run: test metrics of the best-validation model, metrics.json, summary."""

import json

import torch
from torch.utils.tensorboard import SummaryWriter

from aicore.models import MODEL_FILE
from common.atomic import atomic_write_text
from training.engine import evaluate, make_loader
from training.listing_data import build_dataset
from training.report import compute_metrics, confusion_figure, format_report
from training.run_state import RunState
from training.split import limit_ids
from training.text_runs import text_reference

METRICS_FILE = "metrics.json"


def finish(state: RunState, device: torch.device, writer: SummaryWriter, speed: float,
           wall: float) -> dict:
    """Evaluate the best-validation model on the test split; write metrics.json."""
    cfg = state.run
    best = torch.load(state.run_dir / MODEL_FILE, map_location="cpu", weights_only=True)
    state.model.load_state_dict(best)
    test_ds = build_dataset(state.data, state.split["test"], state.model, state.model_args,
                            augment=None)
    test = evaluate(state.model, make_loader(test_ds, cfg.batch_size, cfg.workers, device),
                    device)
    test_metrics = compute_metrics(test["y_true"], test["y_pred"], state.data.class_names)
    metrics = {
        "test_accuracy": test_metrics["accuracy"], "test_loss": test["loss"],
        "val_accuracy": state.best_val_acc, "best_epoch": state.best_epoch,
        "epochs": cfg.epochs, "classification_report": test_metrics["report"],
        "confusion_matrix": test_metrics["confusion_matrix"],
        "class_names": state.data.class_names, "counts": split_counts(state),
        "history": state.history, "train_images_per_second": speed, "wall_time_s": wall,
    }
    if state.wise is not None:
        metrics["wise_ft"] = state.wise
    if state.model_args["arch"] == "text":  # how far from the classic baseline, same split
        metrics["tfidf_logreg"] = text_reference(state.data, state.split)
    atomic_write_text(state.run_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    writer.add_figure("confusion_matrix/test", confusion_figure(
        test_metrics["confusion_matrix"], state.data.class_names, "test confusion matrix"),
        state.best_epoch)
    writer.add_hparams(_hparams(state.config), {"hparam/test_accuracy": metrics["test_accuracy"],
                                       "hparam/best_val_accuracy": state.best_val_acc},
                       run_name=".")
    print(format_report(test_metrics, "test"))
    return metrics


def split_counts(state: RunState) -> dict:
    """Images per split and class, as trained (``--limit-train`` applied)."""
    cfg = state.run
    ids = {**state.split, "train": limit_ids(state.split["train"], cfg.limit_train, cfg.seed)}
    category = state.data.manifest.set_index("image_id")["category"]
    return {name: {"total": len(split_ids),
                   "per_class": {c: int(n) for c, n in
                                 category.loc[split_ids].value_counts().sort_index().items()}}
            for name, split_ids in ids.items()}


def _hparams(config: dict) -> dict:
    """TensorBoard accepts only numbers, strings and booleans."""
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in config.items()}


def print_summary(state: RunState, metrics: dict) -> None:
    print(f"best val accuracy {metrics['val_accuracy']:.4f} (epoch {metrics['best_epoch']}), "
          f"test accuracy {metrics['test_accuracy']:.4f}; trained at "
          f"{metrics['train_images_per_second']:.1f} images/s; wall time "
          f"{metrics['wall_time_s']:.1f} s; run in {state.run_dir}")
