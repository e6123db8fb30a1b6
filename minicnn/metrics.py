"""Classification metrics: accuracy, confusion matrix, per-class precision / recall / F1.

    confusion[t, p] = number of samples of true class t predicted as class p
    precision_k     = confusion[k, k] / sum_t confusion[t, k]    (of everything called k, how much was k)
    recall_k        = confusion[k, k] / sum_p confusion[k, p]    (of every real k, how much was found)
    f1_k            = 2 * precision_k * recall_k / (precision_k + recall_k)
    macro average   = the plain mean over classes; weighted average = the mean weighted by support (true count)
"""
from __future__ import annotations

import numpy as np


def accuracy(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else 0.0


def confusion_matrix(y_true, y_pred, num_classes=None):
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def precision_recall_f1(confusion):
    """Three arrays (one value per class); a class never predicted (or never present) gets 0, not NaN."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positives = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, actual, out=np.zeros_like(true_positives), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(both), where=both > 0)
    return precision, recall, f1


def averages(confusion):
    """{"macro": {...}, "weighted": {...}}, each with "precision", "recall", "f1" and "support" (as Keras's and
    scikit-learn's reports: macro = plain mean over classes, weighted = mean weighted by each class's support)."""
    precision, recall, f1 = precision_recall_f1(confusion)
    support = np.asarray(confusion).sum(axis=1)
    total = int(support.sum())
    weights = support / total if total else np.zeros(len(support))
    return {
        "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean()),
                  "support": total},
        "weighted": {"precision": float(precision @ weights), "recall": float(recall @ weights),
                     "f1": float(f1 @ weights), "support": total},
    }


def format_confusion_matrix(confusion, class_names=None):
    """The confusion matrix as text: rows are true classes, columns predicted classes."""
    size = len(confusion)
    names = [str(name) for name in (class_names if class_names is not None else range(size))]
    width = max(max(len(str(v)) for v in np.ravel(confusion)), max(len(n) for n in names)) + 1
    label_width = max(len(n) for n in names) + 1
    lines = [" " * label_width + "  predicted", " " * label_width + " |" + "".join(n.rjust(width) for n in names)]
    lines.append("-" * (label_width + 2 + width * size))
    for name, row in zip(names, confusion):
        lines.append(name.rjust(label_width) + " |" + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def classification_report(confusion, class_names=None):
    """Per-class precision, recall, F1 and support, with macro and weighted averages, as text."""
    precision, recall, f1 = precision_recall_f1(confusion)
    support = np.asarray(confusion).sum(axis=1)
    names = [str(name) for name in (class_names if class_names is not None else range(len(confusion)))]
    width = max(12, max(len(n) for n in names) + 1)
    lines = [f"{'class':>{width}} {'precision':>10} {'recall':>10} {'f1':>10} {'support':>9}"]
    for name, p, r, f, s in zip(names, precision, recall, f1, support):
        lines.append(f"{name:>{width}} {p:10.4f} {r:10.4f} {f:10.4f} {s:9d}")
    for kind, average in averages(confusion).items():
        lines.append(f"{kind + ' avg':>{width}} {average['precision']:10.4f} {average['recall']:10.4f} "
                     f"{average['f1']:10.4f} {average['support']:9d}")
    return "\n".join(lines)
