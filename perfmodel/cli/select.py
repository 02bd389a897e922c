"""``perfmodel select`` (rank framework x network x threads against a spec) and ``perfmodel correlate``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from perfmodel.cli.options import json_option, list_option, split_list
from perfmodel.cli.show import fmt, stdout_console
from perfmodel.errors import PerfmodelError
from perfmodel.workflows.select import correlation, select_from_dataset, spec_from_options

UNEVALUABLE_POLICY = (
    "A constraint that cannot be evaluated for a candidate (no measured value and no model that predicts "
    "it, e.g. --max-power on a machine without a power sensor) is never treated as passing: the candidate "
    "is listed under 'cannot evaluate' with the constraint and the reason, and is not ranked unless "
    "--allow-unknown is given (then it is ranked, flagged in the 'unknown' column)."
)


def _val(r, col: str, fmt: str = ".3g") -> str:
    v = r.get(col, math.nan)
    src = str(r.get(f"{col}_source", ""))
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    s = format(float(v), fmt)
    if src == "predicted":
        lo, hi = r.get(f"{col}_lo", math.nan), r.get(f"{col}_hi", math.nan)
        s += f" [{format(lo, fmt)}, {format(hi, fmt)}] p" if not (math.isnan(lo) or math.isnan(hi)) else " p"
    elif src == "derived":
        s += " d"
    elif src == "published":
        s += " pub"
    return s


def print_selection(result) -> None:
    from rich.markup import escape
    from rich.table import Table as _Table

    class Table(_Table):  # every cell is plain text, never rich markup
        def add_row(self, *cells, **kw):
            super().add_row(*(escape(str(c)) for c in cells), **kw)

    con = stdout_console(160)
    spec = result.spec
    con.print(f"[bold]spec[/bold]: {'; '.join(c.describe() for c in spec.constraints) or 'no constraints'}; "
              f"objective: {spec.describe_objective()}  ({len(result.candidates)} candidates)")
    t = Table(title="ranked (p = predicted \\[interval], d = derived, pub = published; otherwise measured)")
    for col in ("rank", "candidate", "objective", "fps", "power W", "energy J/img", "top1", "mem MiB", "temp C",
                "flags"):
        t.add_column(col, justify="left" if col in ("candidate", "flags") else "right")
    for _, r in result.ranked.iterrows():
        flags = "; ".join(x for x in (f"unknown: {r['unknown']}" if r.get("unknown") else "",
                                      f"uncertain: {r['uncertain']}" if r.get("uncertain") else "") if x)
        t.add_row("-" if math.isnan(r["rank"]) else str(int(r["rank"])), r["candidate"],
                  "n/a" if math.isnan(r["objective"]) else f"{r['objective']:.4g}",
                  _val(r, "throughput_fps"), _val(r, "power_w"), _val(r, "energy_j"), _val(r, "top1"),
                  _val(r, "max_rss_mb", ".4g"), _val(r, "temperature_c"), flags)
    con.print(t)
    if len(result.excluded):
        t = Table(title="excluded: the constraint that excluded each candidate")
        for col in ("candidate", "constraint", "value", "limit", "short by", "source"):
            t.add_column(col)
        for _, r in result.excluded.iterrows():
            t.add_row(r["candidate"], r["text"], f"{r['value']:.4g}", f"{r['limit']:g}", f"{r['shortfall']:.3g}",
                      str(r["source"]))
        con.print(t)
    if len(result.unevaluable):
        t = Table(title="cannot evaluate (not ranked" + (", ranked anyway: --allow-unknown)" if spec.allow_unknown
                                                         else "; --allow-unknown ranks them, flagged)"))
        for col in ("candidate", "constraint", "reason"):
            t.add_column(col)
        for _, r in result.unevaluable.iterrows():
            t.add_row(r["candidate"], r["text"], str(r["reason"]))
        con.print(t)
    if len(result.pareto):
        t = Table(title=f"Pareto front ({' vs '.join(result.pareto_axes)})")
        for col in ["candidate"] + result.pareto_axes + ["status"]:
            t.add_column(col)
        for _, r in result.pareto.iterrows():
            t.add_row(r["candidate"], *[_val(r, c) for c in result.pareto_axes], r["status"])
        con.print(t)
    for n in result.notes:
        con.print(f"note: {n}")
    if result.binding:
        con.print(f"[bold red]{result.binding['message']}[/bold red]")


SELECT_HELP = (
    "Rank framework x network x threads candidates of a data set against constraints and an objective.\n\n"
    "Candidates are the measured cells (repeats averaged); --model fills figures a cell lacks with "
    "predictions (with intervals). Accuracy is the zoo's published top-1 / top-5. Energy per image is "
    "measured per-image energy or power / throughput. Prints the ranked table with each value's source, "
    "the excluded candidates with the constraint that excluded them, the Pareto front (throughput vs "
    "power vs top-1), and for an infeasible spec the binding constraint and how close the best "
    "candidate came.\n\n" + UNEVALUABLE_POLICY + "\n\nExit status: 0 when a candidate is ranked, 1 when "
    "none is (infeasible or unevaluable spec), 2 on bad input.")


CORRELATE_HELP = (
    "Pearson (95 % Fisher-z CI, p-value) and Spearman correlation of power or throughput with event "
    "figures.\n\n--level sample: over the trace samples (instantaneous power vs events/s, the study's "
    "Table II; default features: every *_per_s column). --level cell: across cells (throughput vs "
    "per-image counts, the study's Fig. 5; default features: every *_per_image column). auto: sample "
    "when the target has trace samples, else cell. Fewer than 3 samples or a constant column give n/a "
    "with the reason.")


def _select_graph(graph: str, dataset: Path | None, models: list[Path] | None, min_fps: float | None,
                  json_out: bool, others: dict[str, float | None]) -> None:
    from perfmodel.cli.show import print_table, say
    from perfmodel.workflows.graph import fmt_interval, select_graph

    if dataset is not None:
        raise PerfmodelError("--graph ranks a network from its graph alone: give no data set")
    if not models or len(models) != 1:
        raise PerfmodelError("--graph needs one --model: an operator model (trained/throughput_operator.json)")
    unevaluable = [f"{k} {v:g}: the operator model predicts throughput only" for k, v in others.items()
                   if v is not None]
    res = select_graph(models[0], graph, min_fps=min_fps, unevaluable=unevaluable, say=say)
    if json_out:
        typer.echo(json.dumps(res, indent=1, default=str))
    else:
        rows = [[str(i + 1), r["framework"], str(r["threads"]), f"{r['fps']:.1f}", fmt_interval(r["lo"], r["hi"]),
                 "-" if r["meets"] is None else ("yes" if r["surely_meets"] else "yes (interval below)"
                                                 if r["meets"] else "no")] for i, r in enumerate(res["rows"])]
        print_table(f"{res['graph']}: framework x threads by predicted fps", ["#", "framework", "threads", "fps",
                    f"{100 * (1 - res['alpha']):g} % interval", "meets --min-fps"], rows, left=3)
        choice = res["choice"]
        if unevaluable:
            typer.echo("no choice: a constraint asked for cannot be evaluated from the graph (below)")
        elif choice:
            typer.echo(f"choice: {choice['framework']} x{choice['threads']} at {choice['fps']:.1f} fps "
                       f"({choice['lo']:.1f} - {choice['hi']:.1f}; predicted from the graph, never run)")
        elif min_fps is not None:
            typer.echo(f"no framework x threads meets --min-fps {min_fps:g}")
        else:
            typer.echo("no framework x threads to rank (the operator model has no cells)")
        for line in unevaluable:
            typer.echo(f"not evaluable: {line}")
    if not res["feasible"] or unevaluable:
        raise typer.Exit(1)


def select_cmd(
    dataset: Path = typer.Argument(None, help="Data set folder or records file (.parquet); not with --graph."),
    model: list[Path] = list_option(None, "--model", "-m", help="Model files (perfmodel fit). "
                                    "Their target (throughput_fps, power_w, ...) is predicted where missing."),
    max_power: float = typer.Option(None, "--max-power", help="Power budget (W, mean while inferring)."),
    max_energy: float = typer.Option(None, "--max-energy", help="Maximum energy per image (J)."),
    min_fps: float = typer.Option(None, "--min-fps", help="Minimum throughput (images/s)."),
    min_top1: float = typer.Option(None, "--min-top1", help="Minimum top-1 accuracy, fraction (0.55) "
                                   "or percent (> 1)."),
    min_top5: float = typer.Option(None, "--min-top5", help="Minimum top-5 accuracy, fraction or percent."),
    max_memory: float = typer.Option(None, "--max-memory", help="Maximum peak memory (MB; max_rss_mb)."),
    max_temp: float = typer.Option(None, "--max-temp", help="Maximum temperature (degC)."),
    objective: str = typer.Option("throughput", "--objective", help="throughput (max fps), energy (min J/"
                                  "image), power (min W) or merit (max product of value^weight)."),
    weights: list[str] = list_option(None, "--weights", help="Merit weights, column=number terms, e.g. "
                                     "'throughput_fps=1,power_w=-1,top1=1' (the default): merit = fps * "
                                     "top1 / W."),
    allow_unknown: bool = typer.Option(False, "--allow-unknown", help="Rank candidates with a constraint "
                                       "that cannot be evaluated anyway, flagged."),
    expand: bool = typer.Option(False, "--expand", help="Also list framework x network x threads "
                                "combinations of the data set that were not measured (models may fill them)."),
    board: str = typer.Option(None, "--board", help="Rank the cells of this board only (a data set of "
                              "several boards, e.g. from a fleet: perfmodel collect --scheduler)."),
    json_out: bool = json_option("Print the result as JSON."),
    graph: str = typer.Option(None, "--graph", help="Rank framework x threads for a network never run (a .onnx "
                              "or .keras file or a zoo network name) with an operator model (--model "
                              "trained/throughput_operator.json): by predicted fps, --min-fps checked; other "
                              "constraints are reported as not evaluable."),
) -> None:
    if graph is not None:
        _select_graph(graph, dataset, model, min_fps, json_out,
                      {"--max-power": max_power, "--max-energy": max_energy, "--min-top1": min_top1,
                       "--min-top5": min_top5, "--max-memory": max_memory, "--max-temp": max_temp})
        return
    if dataset is None:
        raise PerfmodelError("give a data set (or --graph FILE with an operator model)")
    spec = spec_from_options(max_power=max_power, max_energy=max_energy, min_fps=min_fps, min_top1=min_top1,
                             min_top5=min_top5, max_memory=max_memory, max_temp=max_temp, objective=objective,
                             weights=weights, allow_unknown=allow_unknown)
    result = select_from_dataset(dataset, spec, model_paths=model, board=board, expand=expand)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=1, default=str))
    else:
        print_selection(result)
    if not result.feasible:
        raise typer.Exit(1)


def correlate_cmd(
    dataset: Path = typer.Argument(..., help="Data set folder or records file (.parquet)."),
    target: str = typer.Option("power_w", "--target", help="power_w, throughput_fps or any column."),
    features: list[str] = list_option(None, "--features", help="Columns (default: event rates for "
                                      "samples, per-image counts for cells)."),
    by: str = typer.Option(None, "--by", help="Group by this column (e.g. framework)."),
    level: str = typer.Option("auto", "--level", help="sample, cell or auto."),
    json_out: bool = json_option("Print the table as JSON records."),
) -> None:
    res, level, table = correlation(dataset, target, split_list(features, "--features") if features else None,
                                    by=by, level=level)
    if json_out:
        recs = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in res.to_dict("records")]
        typer.echo(json.dumps({"target": target, "level": level, "rows": recs}, indent=1, default=str))
        return
    from rich.table import Table

    t = Table(title=f"correlation of {target} ({level} level, {len(table)} rows)")
    for col in ("group", "feature", "n", "pearson r", "95% CI", "p", "spearman rho", "p (rho)", "note"):
        t.add_column(col, justify="left" if col in ("group", "feature", "note") else "right")

    for _, r in res.iterrows():
        t.add_row(str(r["group"]), r["feature"], str(r["n"]), fmt(r["pearson_r"], ".3f"),
                  f"[{fmt(r['ci_low'], '.3f')}, {fmt(r['ci_high'], '.3f')}]", fmt(r["p_value"], ".2g"),
                  fmt(r["spearman_rho"], ".3f"), fmt(r["spearman_p"], ".2g"), r["reason"])
    stdout_console(160).print(t)


def register(app: typer.Typer) -> None:
    """Add ``select`` and ``correlate`` to the ``perfmodel`` app."""
    app.command("select", help=SELECT_HELP)(select_cmd)
    app.command("correlate", help=CORRELATE_HELP)(correlate_cmd)
