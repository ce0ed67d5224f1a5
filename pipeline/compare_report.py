"""The figures and the report of pipeline.compare: report.md, and report.html with the figures
embedded (MLflow shows an HTML artifact inline; it would not resolve relative image paths)."""
import base64
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline.compare_stats import ALPHA, CI_SUFFIX, DIRECTIONS, is_seed, t_half_width
from w2v.atomic import atomic_write_text

LOSS_CURVE = "loss_smoothed"
PANELS_PER_ROW = 3
MAX_CURVE_PANELS = 30  # a whole experiment: the best 30 seed groups get a panel


def group_keys(params: list[str]) -> list[str]:
    return [p for p in params if not is_seed(p)]


def distinct_effects(params: list[str], together: dict[str, list[str]]) -> list[str]:
    """The first of each set of parameters that vary together (compare_stats.varies_with), in the
    order of `params`: one panel or bar per effect that can be told apart."""
    shown: list[str] = []
    for param in params:
        if not any(other in together.get(param, []) for other in shown):
            shown.append(param)
    return shown


def with_partners(param: str, together: dict[str, list[str]]) -> str:
    """`loss.name` or, when others vary with it, `loss.name\n(with train.lr, ...)` for a label."""
    others = together.get(param, [])
    return param if not others else f"{param}\n(with {textwrap.fill(', '.join(others), 48)})"


def label_of(row: pd.Series, keys: list[str]) -> str:
    parts = [f"{_short_key(k)}={_short(row[k])}" for k in keys if not pd.isna(row[k])]
    return ", ".join(parts) or "all runs"


def _short_key(key: str) -> str:
    """`train.window` -> `window`, `loss.name` -> `loss`."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _grid(count: int, width: float = 4.2, height: float = 3.2):
    """A figure with `count` panels, at most PANELS_PER_ROW per row; (figure, flat list of axes)."""
    columns = max(1, min(PANELS_PER_ROW, count))
    rows = max(1, math.ceil(count / columns))
    figure = Figure(figsize=(width * columns, height * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for extra in axes[count:]:
        extra.set_axis_off()
    return figure, list(axes[:count])


def plot_loss_curves(client, table: pd.DataFrame, groups: pd.DataFrame, params: list[str], path: Path) -> int:
    """One panel per seed group (best first), one line per seed; returns how many runs were drawn."""
    keys = group_keys(params)
    shown = groups.head(MAX_CURVE_PANELS)
    figure, panels = _grid(len(shown))
    drawn = 0
    for axes, (_, group) in zip(panels, shown.iterrows()):
        members = table
        for key in keys:
            members = members[members[key].isna()] if pd.isna(group[key]) else members[members[key] == group[key]]
        for i, (_, run) in enumerate(members.iterrows()):
            history = sorted((m.step, m.value) for m in client.get_metric_history(run["run_id"], LOSS_CURVE))
            if history:
                steps, values = zip(*history)
                seed = next((run[p] for p in params if is_seed(p)), None)
                axes.plot(steps, values, linewidth=1, color=f"C{i % 10}",
                          label=f"seed {_short(seed)}" if seed is not None else run["run"])
                drawn += 1
        axes.set_title(textwrap.fill(label_of(group, keys), 52), fontsize=9)  # long labels must not run into the next panel's
        axes.set_xlabel("iteration", fontsize=8)
        axes.set_ylabel(LOSS_CURVE, fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
        if len(members) > 1:
            axes.legend(fontsize=7, loc="upper right", framealpha=0.6)
    more = f" (best {MAX_CURVE_PANELS} of {len(groups)} groups)" if len(groups) > MAX_CURVE_PANELS else ""
    figure.suptitle(f"Training loss (moving average, each run's own objective) per setting{more}", fontsize=10)
    figure.savefig(path, dpi=110)
    return drawn


def _axis_values(axes, values: pd.Series, param: str):
    """x positions of `values`: numbers (log axis for lr or a wide positive range), else categories."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        positive = numbers[numbers > 0]
        if len(positive) == len(numbers) and (param.endswith("lr") or positive.max() / positive.min() >= 50):
            axes.set_xscale("log")
        distinct = sorted(numbers.unique())
        if len(distinct) <= 10:  # ticks at the swept values themselves, no log-axis minor labels
            axes.set_xticks(distinct, [f"{v:g}" for v in distinct], fontsize=7)
            axes.set_xticks([], minor=True)
        return numbers.astype(float)
    categories = sorted(values.astype(str).unique())
    axes.set_xticks(range(len(categories)), categories, rotation=15, fontsize=7)
    return values.astype(str).map({c: i for i, c in enumerate(categories)}).astype(float)


def plot_metric_vs_params(table: pd.DataFrame, metric: str, params: list[str], path: Path,
                          together: dict[str, list[str]]) -> None:
    """One panel per swept parameter: every run as a dot, the mean per value with its 95%
    t-interval over the runs at that value as error bars. Parameters that vary together
    (`together`, compare_stats.varies_with) share one panel, labelled with all of them."""
    shown = distinct_effects(group_keys(params), together) or params or ["(none)"]
    figure, panels = _grid(len(shown))
    rated = table[table[metric].notna()]
    for axes, param in zip(panels, shown):
        if param not in rated:
            axes.text(0.5, 0.5, "no parameter differs between the runs", ha="center", va="center")
            axes.set_axis_off()
            continue
        present = rated[rated[param].notna()]
        x = _axis_values(axes, present[param], param)
        axes.scatter(x, present[metric], s=14, alpha=0.45, color="C0", label="runs")
        per_value = present.assign(_x=x).groupby("_x")[metric]
        means = per_value.mean()
        halves = per_value.apply(lambda v: t_half_width(v.to_numpy()))
        axes.errorbar(means.index, means.values, yerr=np.nan_to_num(halves.values), color="black", capsize=4,
                      marker="o", markersize=4, linewidth=1, label="mean, 95% t-interval")
        axes.set_xlabel(with_partners(param, together), fontsize=8)
        axes.set_ylabel(f"{metric} ({DIRECTIONS.get(metric, '?')} better)", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
    panels[0].legend(fontsize=7, loc="best", framealpha=0.6)
    title = f"{metric} against each swept parameter ({len(rated)} runs)"
    figure.suptitle(textwrap.fill(title, 48 * len(panels[:PANELS_PER_ROW])), fontsize=10)  # one panel: two lines
    figure.savefig(path, dpi=110)


def plot_importance(weights: pd.DataFrame, path: Path) -> None:
    """Horizontal bars: eta squared per parameter, one bar per metric; legend below the axes.
    Parameters that vary together share one eta squared: one set of bars, labelled with all."""
    columns = [c for c in weights.columns if c.startswith("eta2 ")]
    together = partners(weights)
    # the same representative as the panels' (the first by name), in the table's order of importance
    weights = weights[weights["parameter"].isin(distinct_effects(sorted(weights["parameter"]), together))]
    figure = Figure(figsize=(7, 1.2 + 0.45 * max(1, len(weights)) * max(1, len(columns)) / 2), layout="constrained")
    axes = figure.subplots()
    height = 0.8 / max(1, len(columns))
    positions = np.arange(len(weights))
    for i, column in enumerate(columns):
        axes.barh(positions + i * height, weights[column].fillna(0), height=height, label=column[len("eta2 "):],
                  color=f"C{i}")
    axes.set_yticks(positions + height * (len(columns) - 1) / 2,
                    [with_partners(param, together) for param in weights["parameter"]], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("eta² (share of the variance over all runs explained by the parameter's values)", fontsize=8)
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=min(3, len(columns)))
    figure.savefig(path, dpi=110)


def _with_interval(value: float, half: float) -> str:
    if pd.isna(value):
        return "—"
    return f"{value:.4g}" if pd.isna(half) else f"{value:.4g} ± {half:.2g}"


def groups_markdown(groups: pd.DataFrame, metric: str, params: list[str]) -> str:
    keys = group_keys(params)
    shown = groups[keys].copy() if keys else pd.DataFrame(index=groups.index)
    for key in keys:
        shown[key] = [("—" if pd.isna(v) else _short(v)) for v in groups[key]]
    shown["seeds"] = groups["n"]
    shown[f"{metric} mean ± 95% CI"] = [
        _with_interval(m, t if n >= 2 else b) + ("" if n >= 2 or pd.isna(b) else " (bootstrap)")
        for m, t, b, n in zip(groups["mean"], groups["t_ci95"], groups["bootstrap_ci95"], groups["n"])]
    shown["distinguishable_from_best"] = groups["distinguishable_from_best"]
    shown["p (Welch)"] = ["" if pd.isna(p) else f"{p:.3g}" for p in groups["p_welch"]]
    return shown.to_markdown(index=False)


def runs_markdown(table: pd.DataFrame, params: list[str], figures: list[str]) -> str:
    shown = table[["rank", "run"] + params].copy()
    shown.insert(2, "run_id", table["run_id"].str[:8])
    for name in figures:
        halves = table.get(name + CI_SUFFIX, pd.Series(np.nan, index=table.index))
        shown[name] = [_with_interval(v, h) for v, h in zip(table[name], halves)]
    return shown.astype(object).where(shown.notna(), "—").to_markdown(index=False)


RULE = (f"A group is *distinguishable from the best* when, with two or more seeds on both sides, Welch's "
        f"two-sided t-test on the per-seed values gives p < {ALPHA}; when either side has one seed, when the "
        f"two 95% intervals (the run's bootstrap interval for one seed, the t-interval over seeds otherwise) "
        f"do not overlap. There is no correction for multiple comparisons: with many groups, some "
        f"\"yes\" verdicts are expected by chance.")


def report_markdown(table, groups, weights, metric, params, title, figures) -> str:
    table_figures = [f for f in table.columns if f in DIRECTIONS or (f.startswith("eval_") and not f.endswith(CI_SUFFIX))]
    constant = [f for f in table_figures if f not in DIRECTIONS and table[f].nunique(dropna=True) == 1]
    # the _vs_zero difference is the NS loss shifted by a constant: it adds a column, not a fact
    headline = [f for f in table_figures if f in DIRECTIONS and not f.endswith(("_oov", "_random", "_vs_zero"))][:10]
    lines = [f"# {title}", "",
             f"{len(table)} runs, ranked by `{metric}` ({DIRECTIONS[metric]} is better). "
             f"Parameters that differ: {', '.join(f'`{p}`' for p in params) or 'none'}. "
             f"`x ± h`: h is the half-width of a 95% interval.", ""]
    for name in figures:
        lines += [f"## Settings by `{name}` ({DIRECTIONS[name]} is better)", "",
                  groups_markdown(groups[name], name, params), ""]
    lines += [RULE, "", "## Parameter importance", "",
              "One-way eta²: the share of the figure's variance over all runs that the parameter's values explain. "
              "Parameters that vary together (`varies with`, such as a loss's own default step in a sweep over "
              "the loss) cannot be told apart: they share one eta², one bar in the figure and one panel below, "
              "labelled with all of them.", "",
              weights.to_markdown(index=False, floatfmt=".3f"), "", "![parameter importance](importance.png)", "",
              "## Runs", "", runs_markdown(table, params, headline), "",
              *([f"The same for every run (references and counts): "
                 + ", ".join(f"`{f}` = {table[f].dropna().iloc[0]:.4g}" for f in constant) + ". "
                 "Every figure of every run is in runs.csv.", ""] if constant else []),
              "## Loss curves", "", "![loss curves](loss_curves.png)", "",
              "## Each held-out figure against each parameter", ""]
    lines += [f"![{name} against the parameters](vs_params_{name}.png)\n" for name in figures]
    lines += ["## Directions", "", pd.DataFrame(
        {"metric": [f for f in table_figures], "better": [DIRECTIONS.get(f, "not declared") for f in table_figures]}
    ).to_markdown(index=False), ""]
    return "\n".join(lines)


def report_html(markdown_text: str, folder: Path, title: str) -> str:
    """report.md rendered as one self-contained HTML page (PNG figures as data: URIs)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown_text)

    def embed(match):
        data = base64.b64encode((folder / match.group(1)).read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([\w.-]+\.png)"', embed, body)
    style = ("body{font-family:sans-serif;max-width:1400px;margin:1em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{style}</style></head><body>\n{body}</body></html>\n")


def partners(weights: pd.DataFrame) -> dict[str, list[str]]:
    """The `varies with` column of the importance table as {parameter: [the others]}."""
    return {param: [p for p in others.split(", ") if p] for param, others in zip(weights["parameter"],
                                                                                    weights["varies with"])}


def write_report(folder: Path, client, table, groups: dict, weights, metric: str, params: list[str], title: str) -> None:
    """All figures, report.md and report.html into `folder`."""
    figures = list(groups)
    plot_loss_curves(client, table, groups[metric], params, folder / "loss_curves.png")
    for name in figures:
        plot_metric_vs_params(table, name, params, folder / f"vs_params_{name}.png", partners(weights))
    plot_importance(weights, folder / "importance.png")
    text = report_markdown(table, groups, weights, metric, params, title, figures)
    atomic_write_text(folder / "report.md", text)
    atomic_write_text(folder / "report.html", report_html(text, folder, title))
