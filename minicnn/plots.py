"""The evaluation report's figures, one function per figure, each returning a ``matplotlib.figure.Figure``.

    from minicnn import plots
    figure = plots.confusion_matrix(confusion, class_names)   # in a notebook: shown as the cell's result
    figure.savefig("confusion.png")                           # anywhere: no display needed

The figures are built as ``Figure`` objects with matplotlib's Agg canvas, never through pyplot's global state:
they work headless (a server, CI), from several threads, and in a notebook (which displays a returned Figure).
Every figure has a fixed size in inches; saved at ``DPI`` (without ``bbox_inches="tight"``) its PNG is exactly
``width * DPI`` by ``height * DPI`` pixels (``pixel_size(figure)``). The numbers come from the caller (see
minicnn/report.py, which takes them from ``model.evaluate`` and minicnn.metrics): nothing here computes a metric.
"""
from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
MAX_CHANNELS = 8  # feature maps shown per layer and example
CURVE_COLORS = {"training": "#1f77b4", "validation": "#d62728", "learning_rate": "#7f7f7f"}


def new_figure(width, height):
    """A Figure of width x height inches on an Agg canvas (no pyplot, no display)."""
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def pixel_size(figure, dpi=DPI):
    """(width, height) in pixels of ``figure.savefig(..., dpi=dpi)``."""
    width, height = figure.get_size_inches()
    return int(round(width * dpi)), int(round(height * dpi))


def image_of(x):
    """A 2-D array to draw for one input image: (H, W, 1) or (H, W) grayscale, else the first channel."""
    x = np.asarray(x)
    return x[..., 0] if x.ndim == 3 else x


def learning_curves(history):
    """Loss (left) and accuracy (right) per epoch, training and validation, with the learning rate on a
    secondary axis of each. ``history``: a History or its ``.history`` dict ("loss", "accuracy", "val_loss",
    "val_accuracy", "learning_rate"; any may be missing)."""
    logs = getattr(history, "history", history) or {}
    figure = new_figure(10, 4)
    for index, metric in enumerate(("loss", "accuracy")):
        axes = figure.add_subplot(1, 2, index + 1)
        lines = []
        for prefix, label in (("", "training"), ("val_", "validation")):
            values = logs.get(prefix + metric)
            if values:
                epochs = np.arange(1, len(values) + 1)
                lines += axes.plot(epochs, values, marker="o", color=CURVE_COLORS[label], label=f"{label} {metric}")
        rates = logs.get("learning_rate")
        if rates:
            secondary = axes.twinx()
            lines += secondary.plot(np.arange(1, len(rates) + 1), rates, linestyle="--", marker=".",
                                    color=CURVE_COLORS["learning_rate"], label="learning rate")
            secondary.set_ylabel("learning rate", color=CURVE_COLORS["learning_rate"])
            secondary.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        if not lines:
            axes.text(0.5, 0.5, "no training history saved with this model", ha="center", va="center",
                      transform=axes.transAxes)
        else:
            axes.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=8)
            axes.xaxis.get_major_locator().set_params(integer=True)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.set_title(metric)
        axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def confusion_matrix(confusion, class_names):
    """The confusion matrix as a heat map (rows: true class, columns: predicted class) with the counts written
    in every cell. The color is the fraction of the row, so a class with fewer images reads the same."""
    confusion = np.asarray(confusion)
    size = len(confusion)
    figure = new_figure(8, 7)
    axes = figure.add_subplot(1, 1, 1)
    rows = confusion.sum(axis=1, keepdims=True)
    fraction = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    image = axes.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    for true in range(size):
        for predicted in range(size):
            count = int(confusion[true, predicted])
            axes.text(predicted, true, f"{count}", ha="center", va="center", fontsize=8,
                      color="white" if fraction[true, predicted] > 0.5 else "black")
    axes.set_xticks(range(size), labels=class_names, rotation=45, ha="right")
    axes.set_yticks(range(size), labels=class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title("confusion matrix (counts)")
    figure.tight_layout()
    return figure


def classification_table(precision, recall, f1, support, class_names, averages):
    """Per-class precision, recall, F1 and support, then the macro and weighted averages, as a table figure
    (the HTML report also has it as a table of text). ``averages``: minicnn.metrics.averages(confusion)."""
    rows = [[name, f"{p:.4f}", f"{r:.4f}", f"{f:.4f}", f"{int(s):,}"]
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)]
    rows += [[f"{kind} avg", f"{a['precision']:.4f}", f"{a['recall']:.4f}", f"{a['f1']:.4f}", f"{a['support']:,}"]
             for kind, a in averages.items()]
    height = 0.6 + 0.25 * (len(rows) + 1)
    figure = new_figure(7, height)
    axes = figure.add_axes((0.02, 0.02, 0.96, 1 - 0.5 / height))
    axes.axis("off")
    table = axes.table(cellText=rows, colLabels=["class", "precision", "recall", "F1", "support"],
                       bbox=(0, 0, 1, 1), cellLoc="right", colLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    worst = int(np.argmin(f1)) if len(f1) else None
    for (row, _), cell in table.get_celld().items():
        if row == 0 or row > len(class_names):
            cell.set_text_props(weight="bold")
        if worst is not None and row == worst + 1:
            cell.set_facecolor("#fde0dd")
    axes.set_title("per-class precision, recall and F1 (lowest F1 shaded)", fontsize=10)
    return figure


def examples(images, true_labels, predicted_labels, probabilities, class_names, title, columns=8):
    """A grid of images, each titled "true X / predicted Y / p" (p: the probability of the predicted class).
    For the most confident mistakes and the least confident correct answers."""
    count = len(images)
    rows = max(1, -(-count // columns))
    figure = new_figure(columns * 1.5, rows * 1.9 + 0.4)
    for index in range(rows * columns):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.axis("off")
        if index >= count:
            continue
        true, predicted = int(true_labels[index]), int(predicted_labels[index])
        axes.imshow(image_of(images[index]), cmap="gray_r", vmin=0, vmax=1)
        axes.set_title(f"true {class_names[true]}\npredicted {class_names[predicted]}\np = "
                       f"{probabilities[index]:.3f}", fontsize=7, color="#b2182b" if true != predicted else "black")
    if count == 0:
        figure.axes[0].text(0.5, 0.5, "none", ha="center", va="center", transform=figure.axes[0].transAxes)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure


def first_parametric_layer(model):
    """The first layer with weights (Conv2D or Dense), or None."""
    for layer in model.layers:
        if layer.parameters():
            return layer
    return None


def first_layer_filters(model, columns=8, max_filters=64):
    """The first layer's filters as images: a Conv2D's kernels (the first input channel), or, for a model that
    starts with Dense, each unit's weights reshaped to the input image. Red positive, blue negative."""
    layer = first_parametric_layer(model)
    kernel = layer.parameters()[0].value if layer is not None else None
    if kernel is not None and kernel.ndim == 4:  # Conv2D, Keras layout (kh, kw, in, out)
        filters = [kernel[:, :, 0, index] for index in range(kernel.shape[3])]
        what = f"{layer.name}: {kernel.shape[3]} filters {kernel.shape[0]}x{kernel.shape[1]}"
    elif kernel is not None and kernel.ndim == 2 and kernel.shape[0] == int(np.prod(model.input_shape)):
        filters = [image_of(kernel[:, index].reshape(model.input_shape)) for index in range(kernel.shape[1])]
        what = f"{layer.name}: weights of {kernel.shape[1]} units as {model.input_shape[0]}x{model.input_shape[1]} images"
    else:
        filters, what = [], "no first-layer filters to draw"
    shown = filters[:max_filters]
    if len(filters) > len(shown):
        what += f" (first {len(shown)})"
    rows = max(1, -(-len(shown) // columns))
    figure = new_figure(columns * 1.0, rows * 1.0 + 0.5)
    limit = max((float(np.abs(f).max()) for f in shown), default=1.0) or 1.0
    for index in range(rows * columns):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.axis("off")
        if index < len(shown):
            axes.imshow(shown[index], cmap="RdBu_r", vmin=-limit, vmax=limit)
    figure.suptitle(what, fontsize=10)
    figure.tight_layout()
    return figure


def normalized(values, axis=None):
    """values scaled to [0, 1] over ``axis`` (a constant array gives zeros)."""
    values = np.asarray(values, dtype=np.float64)
    low = values.min(axis=axis, keepdims=True)
    span = values.max(axis=axis, keepdims=True) - low
    return np.divide(values - low, span, out=np.zeros_like(values), where=span > 0)


def upscaled(tile, size):
    """A 2-D array resized to size x size by nearest neighbour (feature maps smaller than the input)."""
    rows = np.arange(size) * tile.shape[0] // size
    columns = np.arange(size) * tile.shape[1] // size
    return tile[rows][:, columns]


def feature_maps(layer_name, outputs, images, class_names, labels, max_channels=MAX_CHANNELS):
    """What one layer computed for one example per class: a row per example, its input image first, then the
    first ``max_channels`` channels of an image-shaped output (each channel scaled to its own range over the
    examples, so one channel compares across classes), or the output vector as one strip (scaled over the
    layer).

    ``outputs``: the layer's output for ``images`` (from ``model.activations(images)``). Drawn as one mosaic
    image per figure (one axes, not one per tile: ten times faster to draw)."""
    from matplotlib import colormaps

    outputs = np.asarray(outputs)
    rows = len(images)
    spatial = outputs.ndim == 4
    channels = min(max_channels, outputs.shape[-1]) if spatial else 0
    inputs = [image_of(image) for image in images]
    size = max(inputs[0].shape[0], outputs.shape[1] if spatial else 0)
    gap = max(1, size // 14)
    margin_left, margin_top, margin_bottom = 1.0, 0.7, 0.3 if spatial else 0.5
    columns = 1 + (channels if spatial else 6)
    width, height = margin_left + columns * 1.0 + 0.2, margin_top + rows * 1.0 + margin_bottom
    figure = new_figure(width, height)
    viridis = colormaps["viridis"]
    step = size + gap
    gray = [np.repeat(1 - normalized(upscaled(image, size))[..., None], 3, axis=2) for image in inputs]
    if spatial:
        scaled = normalized(outputs[..., :channels], axis=(0, 1, 2))
        mosaic = np.ones((rows * step - gap, columns * step - gap, 3))
        for row in range(rows):
            top = row * step
            mosaic[top:top + size, :size] = gray[row]
            for channel in range(channels):
                left = (channel + 1) * step
                mosaic[top:top + size, left:left + size] = viridis(upscaled(scaled[row, :, :, channel], size))[..., :3]
        axes = figure.add_axes((margin_left / width, margin_bottom / height, columns / width, rows / height))
        axes.imshow(mosaic, aspect="auto", interpolation="nearest")
        axes.set_xticks([(column + 0.5) * step - gap / 2 for column in range(columns)],
                        labels=["input"] + [f"channel {channel}" for channel in range(channels)], fontsize=7)
        axes.xaxis.tick_top()
    else:
        inputs_column = np.ones((rows * step - gap, size, 3))
        for row in range(rows):
            inputs_column[row * step:row * step + size] = gray[row]
        axes = figure.add_axes((margin_left / width, margin_bottom / height, 1 / width, rows / height))
        axes.imshow(inputs_column, aspect="auto", interpolation="nearest")
        axes.set_xticks([step / 2 - gap], labels=["input"], fontsize=7)
        axes.xaxis.tick_top()
        strips = figure.add_axes(((margin_left + 1.1) / width, margin_bottom / height, (columns - 1.1) / width,
                                  rows / height))
        vector = outputs.reshape(rows, -1)
        strips.imshow(normalized(vector), aspect="auto", interpolation="nearest", cmap="viridis",
                      extent=(-0.5, vector.shape[1] - 0.5, rows - 0.5, -0.5))
        strips.set_yticks([])
        strips.tick_params(labelsize=6)
        strips.set_xlabel(f"the {vector.shape[1]:,} output values", fontsize=7)
    axes.set_yticks([row * step + size / 2 for row in range(rows)],
                    labels=[class_names[int(label)] for label in labels], fontsize=7)
    axes.tick_params(length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    shape = "x".join(str(size) for size in outputs.shape[1:])
    shown = f", first {channels} of {outputs.shape[-1]} channels" if spatial and channels < outputs.shape[-1] else ""
    figure.suptitle(f"{layer_name}: output {shape}{shown}", fontsize=10, y=1 - 0.15 / height, va="top")
    return figure


def grid_axis(name, points):
    """An experiment grid's test accuracy against one axis (minicnn/grid.py): ``points`` are (axis value,
    accuracy in [0, 1]) pairs, one per run; a dot per run, a line through the mean at each value. Numbers are
    spaced by value (on a log scale if they span a factor of 10 or more), anything else evenly in the order given."""
    values = list(dict.fromkeys(value for value, _ in points))
    numeric = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values)
    log = numeric and min(values) > 0 and max(values) / min(values) >= 10
    if numeric:
        values.sort()
    position = {value: (value if numeric else index) for index, value in enumerate(values)}
    figure = new_figure(5.5, 3.5)
    axes = figure.add_subplot(1, 1, 1)
    axes.scatter([position[value] for value, _ in points], [accuracy * 100 for _, accuracy in points], s=18,
                 color=CURVE_COLORS["training"], alpha=0.6, label="a run")
    means = [np.mean([accuracy for value, accuracy in points if value == v]) * 100 for v in values]
    axes.plot([position[value] for value in values], means, "-o", color=CURVE_COLORS["validation"], label="mean")
    if log:
        axes.set_xscale("log")
        axes.minorticks_off()
    if numeric and len(values) <= 10:  # the grid's own values as the ticks (0.0003, not 3 x 10^-4)
        axes.set_xticks(values, labels=[f"{value:g}" for value in values], fontsize=8)
    if not numeric:
        axes.set_xticks(range(len(values)), labels=[str(value) if value != "" else "(none)" for value in values],
                        fontsize=8)
    axes.set_xlabel(name)
    axes.set_ylabel("test accuracy (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(f"test accuracy by {name}", fontsize=10)
    figure.tight_layout()
    return figure
