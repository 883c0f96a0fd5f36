"""Classification metrics, their text report and the confusion-matrix figure."""

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display: figures go to TensorBoard only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import classification_report, confusion_matrix  # noqa: E402


def compute_metrics(y_true: Sequence[int], y_pred: Sequence[int], class_names: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of one split.

    Returns:
        ``{"accuracy", "num_images", "report" (sklearn's output_dict), "confusion_matrix"
        (rows = true class, columns = predicted), "class_names"}``.
    """
    labels = list(range(len(class_names)))
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    report = classification_report(y_true, y_pred, labels=labels, target_names=class_names,
                                   output_dict=True, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    accuracy = float((y_true == y_pred).mean()) if y_true.size else 0.0
    return {"accuracy": accuracy, "num_images": int(y_true.size), "report": report,
            "confusion_matrix": cm.tolist(), "class_names": list(class_names)}


def format_report(metrics: dict, title: str) -> str:
    """A plain-text per-class table of :func:`compute_metrics` output."""
    names = metrics["class_names"]
    width = max(len(n) for n in names + ["macro avg"])
    lines = [f"{title}: accuracy {metrics['accuracy']:.4f} on {metrics['num_images']} images",
             f"{'class':<{width}}  precision  recall  f1-score  support"]
    for name in names + ["macro avg", "weighted avg"]:
        row = metrics["report"][name]
        lines.append(f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  "
                     f"{row['f1-score']:8.3f}  {int(row['support']):7d}")
    return "\n".join(lines)


def confusion_figure(cm: list[list[int]], class_names: list[str], title: str) -> plt.Figure:
    """A labelled confusion-matrix heat map (rows true, columns predicted)."""
    matrix = np.asarray(cm)
    size = 2.5 + 0.45 * len(class_names)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(ticks, class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=6,
                color="white" if count > threshold else "black")
    fig.tight_layout()
    return fig
