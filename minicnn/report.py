"""The evaluation report: one self-contained HTML page, its figures as PNGs and every number in report.json.

    from minicnn.report import write_report
    page = write_report(model, x_test, y_test, "reports/mnist-default", data=data)   # -> .../report.html

``write_report`` evaluates the model on the test images and writes into ``out_dir``:

* ``report.html``: the numbers and figures, the PNGs embedded as base64 data URIs, the CSS inline: no external
  file, font or script, so it opens from disk offline and can be mailed as one file;
* the figures as PNGs (minicnn/plots.py draws them): learning curves, confusion matrix, per-class table, the most
  confident mistakes and the least confident correct answers, the first layer's filters, every layer's feature
  maps for one test image per class;
* ``report.json``: every number: loss and accuracy (``model.evaluate``), the confusion matrix, per-class precision
  / recall / F1 with macro and weighted averages (minicnn.metrics), the examples' indices into the test set, the
  per-epoch history, training time and images per second (when the model file records them), the model summary
  and the engine's plan, the data set and where it came from.

The training history, time and data set come from ``model.metadata`` (what train.py saves with the model, and
``load_model`` reads back) unless given. This module knows nothing of mnist_loader: ``data`` is any object with
mnist_loader's ``LoadedDataset`` attributes (``spec.name``, ``spec.title``, ``spec.class_names``, ``source``,
``location``, ``describe()``) or a plain dict.
"""
from __future__ import annotations

import base64
import html
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from minicnn import metrics, plots
from minicnn.layers.softmax import softmax_forward

HTML_NAME = "report.html"
JSON_NAME = "report.json"


def describe_data(data, class_names, test_images):
    """A JSON-able description of the data set, from a LoadedDataset-like object, a dict or nothing."""
    if data is None:
        described = {}
    elif isinstance(data, dict):
        described = dict(data)
    else:
        spec = data.spec
        described = {"dataset": spec.name, "title": spec.title, "description": data.describe(),
                     "source": str(data.source), "location": str(data.location),
                     "sample": bool(getattr(data, "is_sample", False)), "class_names": list(spec.class_names)}
    described.setdefault("class_names", list(class_names) if class_names is not None else None)
    described["test_images"] = int(test_images)
    return described


def history_logs(history, metadata):
    """The per-epoch logs as a dict of lists of floats: from ``history`` (a History or its dict), else from the
    model file's metadata, else None."""
    logs = getattr(history, "history", history)
    if logs is None:
        logs = (metadata or {}).get("history")
    if not logs:
        return None
    return {key: [float(value) for value in values] for key, values in logs.items()}


def training_facts(metadata):
    """What the model file says of its training (train.py's metadata), the history left out (it has its own
    section)."""
    return {key: value for key, value in (metadata or {}).items() if key != "history"} or None


def to_probabilities(outputs, ends_with_softmax):
    return outputs if ends_with_softmax else softmax_forward(outputs.astype(np.float64))[0]


def ranked_examples(indices, confidence, most_confident_first, count):
    """``count`` of ``indices`` ordered by confidence (ties: lower index first)."""
    key = -confidence[indices] if most_confident_first else confidence[indices]
    return indices[np.argsort(key, kind="stable")][:count]


def one_per_class(y_test, num_classes):
    """The index of the first test image of every class present."""
    return np.array([int(np.flatnonzero(y_test == label)[0]) for label in range(num_classes)
                     if np.any(y_test == label)], dtype=np.int64)


def evaluate_for_report(model, x_test, y_test, examples=16, batch_size=256):
    """Every number of the report (a JSON-able dict) and the arrays the figures need."""
    y_test = np.asarray(y_test).astype(np.int64)
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=batch_size)
    started = time.perf_counter()
    outputs = model.predict(x_test, batch_size=batch_size)
    predict_seconds = time.perf_counter() - started
    probabilities = to_probabilities(outputs, model.ends_with_softmax)
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(predicted)), predicted]
    confusion = metrics.confusion_matrix(y_test, predicted, model.num_classes)
    precision, recall, f1 = metrics.precision_recall_f1(confusion)
    support = confusion.sum(axis=1)
    wrong = np.flatnonzero(predicted != y_test)
    right = np.flatnonzero(predicted == y_test)
    mistakes = ranked_examples(wrong, confidence, True, examples)
    unsure = ranked_examples(right, confidence, False, examples)

    def listed(indices):
        return [{"index": int(i), "true": int(y_test[i]), "predicted": int(predicted[i]),
                 "probability": float(confidence[i])} for i in indices]

    numbers = {
        "loss": float(loss), "accuracy": float(accuracy), "test_images": int(len(y_test)),
        "errors": int(len(wrong)), "confusion_matrix": confusion.tolist(),
        "per_class": {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
                      "support": support.tolist()},
        **{f"{kind}_avg": average for kind, average in metrics.averages(confusion).items()},
        "most_confident_mistakes": listed(mistakes), "least_confident_correct": listed(unsure),
        "prediction": {"seconds": predict_seconds, "images_per_second": len(y_test) / predict_seconds
                       if predict_seconds > 0 else None, "batch_size": batch_size, "engine": model.engine},
    }
    arrays = {"predicted": predicted, "confidence": confidence, "mistakes": mistakes, "unsure": unsure,
              "precision": precision, "recall": recall, "f1": f1, "support": support, "confusion": confusion}
    return numbers, arrays


def draw_figures(model, x_test, y_test, numbers, arrays, class_names, logs):
    """[(name, title, Figure)] in the report's order."""
    y_test = np.asarray(y_test).astype(np.int64)
    figures = [("learning_curves", "Learning curves", plots.learning_curves(logs)),
               ("confusion_matrix", "Confusion matrix", plots.confusion_matrix(arrays["confusion"], class_names)),
               ("per_class", "Per-class precision, recall and F1",
                plots.classification_table(arrays["precision"], arrays["recall"], arrays["f1"], arrays["support"],
                                           class_names, {"macro": numbers["macro_avg"],
                                                         "weighted": numbers["weighted_avg"]}))]
    for name, title, indices in (("mistakes", "Most confident mistakes", arrays["mistakes"]),
                                 ("least_confident_correct", "Least confident correct answers", arrays["unsure"])):
        figures.append((name, title, plots.examples(
            x_test[indices], y_test[indices], arrays["predicted"][indices], arrays["confidence"][indices],
            class_names, f"{title} (true class, predicted class, probability of the prediction)")))
    figures.append(("first_layer_filters", "First layer's filters", plots.first_layer_filters(model)))
    chosen = np.asarray(numbers["feature_map_examples"], dtype=np.int64)
    shown = [(name, outputs) for layer, (name, outputs) in zip(model.layers, model.activations(x_test[chosen]))
             if not getattr(layer, "augments", False)]  # (augmentation layers: training only, their output is x)
    for index, (layer_name, outputs) in enumerate(shown):
        figures.append((f"feature_maps_{index:02d}_{layer_name}", f"Feature maps: {layer_name}",
                        plots.feature_maps(layer_name, outputs, x_test[chosen], class_names, y_test[chosen])))
    return figures


# ---------------------------------------------------------------------------------------------- HTML
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .2em .6em; border: 1px solid #ddd; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
tr.average td { font-weight: bold; background: #f6f6f6; }
dl.headline { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dl.headline dt { color: #555; } dl.headline dd { margin: 0; font-weight: bold; }
img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: .9em; }
"""


def cell(value, number=True):
    return f'<td class="number">{html.escape(value)}</td>' if number else f"<td>{html.escape(value)}</td>"


def per_class_table(numbers, class_names):
    per_class = numbers["per_class"]
    rows = ['<table id="per-class"><tr><th>class</th><th class="number">precision</th><th class="number">recall'
            '</th><th class="number">F1</th><th class="number">support</th></tr>']
    for name, p, r, f, s in zip(class_names, per_class["precision"], per_class["recall"], per_class["f1"],
                                per_class["support"]):
        rows.append(f"<tr>{cell(name, False)}{cell(f'{p:.4f}')}{cell(f'{r:.4f}')}{cell(f'{f:.4f}')}"
                    f"{cell(str(s))}</tr>")
    for kind in ("macro", "weighted"):
        a = numbers[f"{kind}_avg"]
        rows.append(f'<tr class="average">{cell(f"{kind} avg", False)}{cell(format(a["precision"], ".4f"))}'
                    f'{cell(format(a["recall"], ".4f"))}{cell(format(a["f1"], ".4f"))}{cell(str(a["support"]))}</tr>')
    return "\n".join(rows + ["</table>"])


def confusion_table(confusion, class_names):
    header = "".join(f'<th class="number">{html.escape(name)}</th>' for name in class_names)
    rows = [f'<table id="confusion-matrix"><tr><th>true \\ predicted</th>{header}</tr>']
    for name, row in zip(class_names, confusion):
        rows.append(f"<tr><th>{html.escape(name)}</th>" + "".join(cell(str(count)) for count in row) + "</tr>")
    return "\n".join(rows + ["</table>"])


def examples_table(listed, class_names, table_id):
    rows = [f'<table id="{table_id}"><tr><th class="number">test index</th><th>true</th><th>predicted</th>'
            '<th class="number">probability</th></tr>']
    for example in listed:
        rows.append(f"<tr>{cell(str(example['index']))}{cell(class_names[example['true']], False)}"
                    f"{cell(class_names[example['predicted']], False)}{cell(format(example['probability'], '.4f'))}"
                    "</tr>")
    return "\n".join(rows + ["</table>"])


def image_tag(png_bytes, width, height, alt):
    encoded = base64.b64encode(png_bytes).decode("ascii")
    return (f'<img src="data:image/png;base64,{encoded}" width="{width}" height="{height}" '
            f'alt="{html.escape(alt)}">')


def format_rate(value):
    return f"{value:,.0f} images/s" if value else "not recorded"


def headline(numbers, report):
    training = report["training"] or {}
    data = report["data"]
    items = [("data set", data.get("description") or data.get("title") or data.get("dataset") or "not given"),
             ("test images", f"{numbers['test_images']:,}"),
             ("test accuracy", f"{numbers['accuracy'] * 100:.2f}%"),
             ("test loss", f"{numbers['loss']:.4f}"),
             ("errors", f"{numbers['errors']:,}"),
             ("macro F1", f"{numbers['macro_avg']['f1']:.4f}"),
             ("training", training.get("training") or "not recorded in the model file"),
             ("training speed", format_rate(training.get("images_per_second"))),
             ("prediction speed", f"{format_rate(numbers['prediction']['images_per_second'])} "
                                  f"({numbers['prediction']['engine']} engine, batch {numbers['prediction']['batch_size']},"
                                  " measured for this report)")]
    ids = ["data-set", "test-images", "test-accuracy", "test-loss", "errors", "macro-f1", "training",
           "training-speed", "prediction-speed"]
    return '<dl class="headline">' + "".join(
        f'<dt>{html.escape(label)}</dt><dd id="{key}">{html.escape(str(value))}</dd>'
        for key, (label, value) in zip(ids, items)) + "</dl>"


def render_html(report, pngs, class_names):
    numbers = report
    figures = {name: (title, image_tag(pngs[name], entry["width"], entry["height"], title))
               for name, entry, title in ((name, entry, entry["title"]) for name, entry in report["figures"].items())}

    def figure(name, caption=""):
        title, tag = figures[name]
        text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        return f'<figure id="figure-{name}">{tag}{text}</figure>'

    feature_names = [name for name in report["figures"] if name.startswith("feature_maps_")]
    history_note = "" if report["history"] else (
        "<p>No training history: the model file was saved without one (models saved before the report existed, "
        "or by code other than train.py).</p>")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>{html.escape(report['title'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(report['title'])}</h1>",
        f"<p>Written {html.escape(report['created_at'])} by minicnn {html.escape(report['minicnn_version'])}. "
        "Every number is also in report.json beside this page.</p>",
        headline(numbers, report),
        "<h2>Learning curves</h2>", history_note, figure("learning_curves", "Per epoch: training and validation "
                                                         "loss and accuracy; dashed, the learning rate."),
        "<h2>Confusion matrix</h2>", figure("confusion_matrix", "Rows: true class; columns: predicted class."),
        "<details><summary>as a table</summary>", confusion_table(report["confusion_matrix"], class_names),
        "</details>",
        "<h2>Precision, recall and F1 per class</h2>", per_class_table(numbers, class_names),
        "<details><summary>as an image</summary>", figure("per_class"), "</details>",
        "<h2>Most confident mistakes</h2>", figure("mistakes"),
        examples_table(report["most_confident_mistakes"], class_names, "most-confident-mistakes"),
        "<h2>Least confident correct answers</h2>", figure("least_confident_correct"),
        examples_table(report["least_confident_correct"], class_names, "least-confident-correct"),
        "<h2>What the first layer looks for</h2>", figure("first_layer_filters"),
        "<h2>Feature maps</h2>", "<p>Every layer's output for the first test image of each class (test indices "
        f"{', '.join(str(i) for i in report['feature_map_examples'])}).</p>",
        *(figure(name) for name in feature_names),
        "<h2>Model</h2>", f"<pre id=\"summary\">{html.escape(report['model']['summary'])}</pre>",
        "<h2>Data and training</h2>",
        f"<pre id=\"facts\">{html.escape(json.dumps({'data': report['data'], 'training': report['training']}, indent=2))}</pre>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


def write_report(model, x_test, y_test, out_dir, history=None, data=None, class_names=None, metadata=None,
                 model_file=None, title=None, examples=16, batch_size=256, verbose=False):
    """Evaluate ``model`` on (x_test, y_test) and write report.html, report.json and the PNGs into ``out_dir``
    (created if needed). Returns the HTML page's path.

    ``history``: a History or its dict (default: the one in ``metadata``). ``data``: the loaded data set
    (mnist_loader's LoadedDataset) or a dict describing it. ``class_names``: default ``data``'s, else the class
    numbers. ``metadata``: what is known of the training (default ``model.metadata``, i.e. what train.py saved
    with the model). ``examples``: how many mistakes and unsure answers to show."""
    import minicnn

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_test = model.prepare_inputs(x_test)
    y_test = np.asarray(y_test).astype(np.int64)
    metadata = model.metadata if metadata is None else metadata
    if class_names is None:
        spec = getattr(data, "spec", None)
        class_names = (spec.class_names if spec is not None else (data or {}).get("class_names")) \
            or [str(label) for label in range(model.num_classes)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != model.num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {model.num_classes} outputs")
    say = (lambda text: print(text, file=__import__("sys").stderr, flush=True)) if verbose else (lambda text: None)

    say(f"report: evaluating on {len(x_test):,} test images")
    numbers, arrays = evaluate_for_report(model, x_test, y_test, examples=examples, batch_size=batch_size)
    numbers["feature_map_examples"] = one_per_class(y_test, model.num_classes).tolist()
    logs = history_logs(history, metadata)
    data_facts = describe_data(data, class_names, len(y_test))
    if not data_facts.get("dataset") and metadata:
        data_facts.update({key: metadata[key] for key in ("dataset", "data", "data_source") if key in metadata})
    report = {
        "title": title or f"minicnn evaluation: {model_file and Path(model_file).name or model.name}",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "minicnn_version": minicnn.__version__,
        "model_file": str(model_file) if model_file else None,
        "model": {"name": model.name, "engine": model.engine, "parameters": int(model.count_params()),
                  "dtype": model.dtype.name, "summary": model.summary(print_fn=None),
                  "plan": model.plan(print_fn=None), "layers": [layer.name for layer in model.layers]},
        "data": data_facts, "class_names": class_names,
        **numbers,
        "history": logs, "training": training_facts(metadata), "figures": {},
    }

    say("report: drawing the figures")
    pngs = {}
    for name, figure_title, figure in draw_figures(model, x_test, y_test, numbers, arrays, class_names, logs):
        path = out_dir / f"{name}.png"
        figure.savefig(path, dpi=plots.DPI, format="png")
        width, height = plots.pixel_size(figure)
        pngs[name] = path.read_bytes()
        report["figures"][name] = {"file": path.name, "title": figure_title, "width": width, "height": height}

    (out_dir / JSON_NAME).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    page = out_dir / HTML_NAME
    page.write_text(render_html(report, pngs, class_names), encoding="utf-8")
    return page.resolve()
