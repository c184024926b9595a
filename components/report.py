"""Looking, not reading: the plots and the one-page HTML strategy report.

Figures are matplotlib (Agg) figures rendered to PNG bytes; the page embeds them, so
`reports/strategy.html` is one self-contained file that opens anywhere.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LADDER = ("human", "train", "train_dev", "dev", "test")
GAP_SPANS = {  # gap -> (lower rung, upper rung) on the error ladder
    "avoidable_bias": ("human", "train"),
    "variance": ("train", "train_dev"),
    "data_mismatch": ("train_dev", "dev"),
    "dev_overfit": ("dev", "test"),
}


def _figure(width: float = 6.4, height: float = 3.6) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def error_ladder_figure(
    human_level_error: float, errors: Mapping[str, float | None], principal: str
) -> Figure:
    """Bars for human, train, train_dev, dev and test error (in %), the principal gap highlighted."""
    rungs = [(name, human_level_error if name == "human" else errors.get(name)) for name in LADDER]
    rungs = [(name, value) for name, value in rungs if value is not None]
    figure = _figure()
    ax = figure.subplots()
    names = [name for name, _ in rungs]
    values = [100 * value for _, value in rungs]
    colors = ["#9aa5b1" if name == "human" else "#3b6ea8" for name in names]
    if principal in GAP_SPANS and all(rung in names for rung in GAP_SPANS[principal]):
        colors[names.index(GAP_SPANS[principal][1])] = "#c0392b"
    bars = ax.bar(names, values, color=colors)
    ax.bar_label(bars, labels=[f"{v:.1f}%" for v in values], padding=2, fontsize=9)
    ax.set_ylabel("error (%)")
    ax.set_title(
        "Error ladder"
        + (
            f" (principal problem: {principal.replace('_', ' ')})"
            if principal != "none"
            else " (no gap above tolerance)"
        ),
        fontsize=10,
    )
    ax.set_ylim(0, max(values) * 1.25 + 0.5)
    ax.spines[["top", "right"]].set_visible(False)
    return figure


def learning_curves_figure(history: Mapping[str, Sequence[float]]) -> Figure:
    """Loss and error per epoch on train and on the monitored split (dev)."""
    figure = _figure(9.0, 3.4)
    loss_ax, error_ax = figure.subplots(1, 2)
    epochs = np.arange(1, len(history["loss"]) + 1)
    loss_ax.plot(epochs, history["loss"], label="train")
    error_ax.plot(epochs, 100 * (1 - np.asarray(history["accuracy"])), label="train")
    if "val_loss" in history:
        loss_ax.plot(epochs, history["val_loss"], label="dev")
        error_ax.plot(epochs, 100 * (1 - np.asarray(history["val_accuracy"])), label="dev")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    error_ax.set(xlabel="epoch", ylabel="error (%)", title="Error")
    for ax in (loss_ax, error_ax):
        ax.legend()
        ax.spines[["top", "right"]].set_visible(False)
    return figure


def _short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def confusion_figure(
    matrix: np.ndarray, labels: Sequence[Any], title: str = "Dev confusion matrix"
) -> Figure:
    """Counts with true classes as rows and predicted classes as columns."""
    matrix = np.asarray(matrix)
    figure = _figure(4.8, 4.2)
    ax = figure.subplots()
    ax.imshow(matrix, cmap="Blues")
    ticks, names = np.arange(len(labels)), [_short(str(label)) for label in labels]
    long = max(map(len, names), default=0) > 3
    ax.set_xticks(ticks, names, rotation=40 if long else 0, ha="right" if long else "center")
    ax.set_yticks(ticks, names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            ax.text(
                col,
                row,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if count > threshold else "black",
            )
    return figure


def error_gallery_figure(images: np.ndarray, captions: Sequence[str], columns: int = 8) -> Figure:
    """A grid of `images` (n, height, width), intensities in [0, 1], each with its caption (true ->
    predicted, tags): the worst dev errors, to look at."""
    images = np.asarray(images)
    rows = max(1, -(-len(images) // columns))
    figure = _figure(1.3 * columns, 1.55 * rows)
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, caption in zip(axes, images, captions, strict=False):
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(caption, fontsize=6)
    return figure


def error_table_figure(
    rows: Sequence[Mapping[str, Any]], width: float = 10.0, empty: str = "no dev errors to show"
) -> Figure:
    """The worst dev errors of data that are not images, as a table to look at: one row per error with its
    keys as columns (e.g. id, label, predicted, tags, and the text cut to fit); `empty` when there are
    none."""
    figure = _figure(width, 0.4 + 0.22 * max(len(rows), 1))
    ax = figure.subplots()
    ax.set_axis_off()
    if not rows:
        ax.text(0.5, 0.5, empty, ha="center", va="center")
        return figure
    columns = list(rows[0])
    cells = [
        [_cut(_shown(row[column]), 90 if column == "text" else 40) for column in columns] for row in rows
    ]
    table = ax.table(cellText=cells, colLabels=columns, loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.auto_set_column_width(list(range(len(columns))))
    return figure


def _shown(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def sweep_figure(
    trials: Sequence[Mapping[str, Any]],
    parameters: Sequence[str],
    metric: str,
    anytime: Sequence[Sequence[float]] = (),
) -> Figure:
    """Left: the anytime curve, the best dev metric found against the epochs spent (`anytime`: [epochs
    spent, best so far] after each trial, in the order they ended), when given.
    Middle: the dev metric of each trial against its learning rate (log axis), trials stopped early
    (pruned, or screened in a coarse round) hollow.
    Right: parallel coordinates, one line per trial across every searched hyperparameter (each axis
    scaled to its own range; learning rate on its log), coloured by the dev metric.
    trials: rows with `learning_rate` (optional), `dev_metric`, `state` and one key per parameter."""
    from matplotlib import colormaps
    from matplotlib.ticker import NullFormatter

    if anytime:
        figure = _figure(14.0, 3.6)
        any_ax, lr_ax, par_ax = figure.subplots(1, 3, width_ratios=[2, 2, 3])
        spent, best = zip(*anytime, strict=True)
        any_ax.step([0, *spent], [best[0], *best], where="post", color="#3b6ea8")
        any_ax.plot(spent, best, "o", markersize=3, color="#3b6ea8")
        any_ax.set(
            xlabel="epochs spent (all trials)", ylabel=f"best dev {metric} so far", title="Anytime curve"
        )
        any_ax.spines[["top", "right"]].set_visible(False)
    else:
        figure = _figure(10.0, 3.6)
        lr_ax, par_ax = figure.subplots(1, 2, width_ratios=[2, 3])
    values = np.array([float(t["dev_metric"]) for t in trials])
    # Colour by rank: one hopeless pruned trial would otherwise wash out the differences that matter.
    norm = np.argsort(np.argsort(values)) / max(len(values) - 1, 1)
    stopped = np.array([t["state"] != "complete" for t in trials])
    if trials and "learning_rate" in trials[0]:
        lr = np.array([float(t["learning_rate"]) for t in trials])
        lr_ax.scatter(lr[~stopped], values[~stopped], color="#3b6ea8", label="finished")
        lr_ax.scatter(
            lr[stopped], values[stopped], facecolors="none", edgecolors="#9aa5b1", label="stopped early"
        )
        lr_ax.set_xscale("log")
        lr_ax.xaxis.set_minor_formatter(NullFormatter())
        lr_ax.legend(fontsize=8)
    lr_ax.set(xlabel="learning rate (log scale)", ylabel=f"dev {metric}", title="Dev metric vs learning rate")
    numeric = [p for p in parameters if all(isinstance(t.get(p), int | float) for t in trials)]
    columns = []
    for name in numeric:
        column = np.array([float(t[name]) for t in trials])
        column = np.log10(column) if name == "learning_rate" else column
        columns.append((column - column.min()) / (np.ptp(column) or 1.0))
    colour = colormaps["viridis"]
    if columns:
        matrix = np.stack(columns, axis=1)
        for row, shade, cut in zip(matrix, norm, stopped, strict=True):
            par_ax.plot(range(len(numeric)), row, color=colour(shade), alpha=0.35 if cut else 0.9)
        par_ax.set_xticks(range(len(numeric)), numeric, fontsize=8)
    par_ax.set_yticks([0, 1], ["low", "high"])
    par_ax.set_title(f"Trials across hyperparameters (yellow: best dev {metric})", fontsize=10)
    for ax in (lr_ax, par_ax):
        ax.spines[["top", "right"]].set_visible(False)
    return figure


def compare_figure(comparisons: Mapping[str, Any]) -> Figure:
    """One panel per comparison that ran: dev error (%) against training size for end to end vs the
    hand-designed pipeline and for transfer vs scratch; test error per task for multi-task vs single-task."""
    from matplotlib.ticker import NullFormatter

    panels = [key for key in ("end_to_end", "transfer", "multitask") if key in comparisons]
    figure = _figure(4.2 * max(len(panels), 1), 3.4)
    if not panels:
        figure.text(0.5, 0.5, "no comparison ran (params.yaml compare)", ha="center", va="center")
        return figure
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    for ax, key in zip(axes, panels, strict=True):
        found = comparisons[key]
        if key == "multitask":
            tasks = list(found["tasks"])
            where = np.arange(len(tasks))
            multi = [100 * found["tasks"][t]["multitask_error"] for t in tasks]
            single = [100 * found["tasks"][t]["single_task_error"] for t in tasks]
            ax.bar(where - 0.2, multi, 0.4, label="one multi-task network", color="#3b6ea8")
            ax.bar(where + 0.2, single, 0.4, label="one network per task", color="#9aa5b1")
            ax.set_xticks(where, [t.replace("_", " ") for t in tasks], fontsize=8)
            ax.set(ylabel="dev error (%)", title=f"Multi-task ({found['missing_share']:.0%} labels missing)")
            ax.set_ylim(0, max(multi + single + [1.0]) * 1.35)  # room for the legend
        else:
            size, first, second, names, title = (
                (
                    "train_size",
                    "end_to_end_error",
                    "pipeline_error",
                    ("end to end", "hand-designed pipeline"),
                    "End to end vs pipeline",
                )
                if key == "end_to_end"
                else (
                    "target_size",
                    "transfer_error",
                    "scratch_error",
                    ("transfer", "from scratch"),
                    "Transfer vs scratch",
                )
            )
            points = sorted(found["points"], key=lambda p: p[size])
            sizes = [p[size] for p in points]
            ax.plot(sizes, [100 * p[first] for p in points], "o-", label=names[0], color="#3b6ea8")
            ax.plot(sizes, [100 * p[second] for p in points], "s--", label=names[1], color="#9aa5b1")
            ax.set_xscale("log")
            ax.set_xticks(sizes, [f"{n:,}" for n in sizes])  # the sizes tried, not decades
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set(xlabel="training examples (log scale)", ylabel="dev error (%)", title=title)
        ax.legend(fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    return figure


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_strategy_report(context: Mapping[str, Any]) -> str:
    """The HTML page from the template `templates/strategy.html.j2`; `context` holds the diagnosis,
    evaluation, split and validation summaries and the PNGs (as bytes) under `figures`."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("components", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["pct"] = lambda value, digits=1: (
        "n/a" if value is None else f"{100 * value:.{digits}f}%"
    )
    environment.filters["title"] = lambda name: str(name).replace("_", " ")
    figures = {name: data_uri(png) for name, png in context.get("figures", {}).items()}
    return environment.get_template("strategy.html.j2").render(**{**context, "figures": figures})
