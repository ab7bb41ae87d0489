"""``clearance scan``: measure the content scanners on a labelled dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clearance.errors import ConfigError
from clearance.scan import default_scanners
from clearance.scan.finding import Scanner
from clearance.scan.quality import LABEL_OF, Metrics, evaluate, parse_dataset, sweep

app = typer.Typer(no_args_is_help=True)


@app.callback()
def scan() -> None:
    """Measure the content scanners (injection, secrets, PII)."""


_out = Console(highlight=False, soft_wrap=True)

_SWEEP = tuple(round(0.05 * step, 2) for step in range(2, 20))


def _selected(name: str | None) -> list[Scanner]:
    scanners = [s for s in default_scanners() if s.name in LABEL_OF]
    if name is None:
        return scanners
    chosen = [s for s in scanners if s.name == name]
    if not chosen:
        raise ConfigError(
            f"unknown scanner {name!r}", hint=f"choose one of: {', '.join(sorted(LABEL_OF))}"
        )
    return chosen


def _table(title: str, rows: list[Metrics]) -> Table:
    table = Table(title=title)
    for column in (
        "scanner",
        "split",
        "threshold",
        "n",
        "tp",
        "fp",
        "fn",
        "precision",
        "recall",
        "fpr",
    ):
        table.add_column(column, justify="left" if column in ("scanner", "split") else "right")
    for m in rows:
        table.add_row(
            m.scanner,
            m.split,
            f"{m.threshold:.2f}",
            str(m.tp + m.fp + m.tn + m.fn),
            str(m.tp),
            str(m.fp),
            str(m.fn),
            f"{m.precision:.3f}",
            f"{m.recall:.3f}",
            f"{m.fpr:.3f}",
        )
    return table


@app.command("eval")
def eval_command(
    dataset: Annotated[Path, typer.Argument(help="Labelled JSON Lines dataset.")],
    scanner: Annotated[
        str | None, typer.Option("--scanner", help="Only this scanner (injection, secrets, pii).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    threshold_sweep: Annotated[
        bool, typer.Option("--sweep", help="Also show the tuning split at thresholds 0.10-0.95.")
    ] = False,
) -> None:
    """Report precision, recall and false-positive rate of each scanner, per split."""
    try:
        lines = dataset.read_text("utf-8").splitlines()
    except OSError as error:
        raise ConfigError(
            f"cannot read the dataset: {error.strerror}", hint=str(dataset)
        ) from error
    items = parse_dataset(lines, file=str(dataset))
    scanners = _selected(scanner)
    results = evaluate(items, scanners)
    sweeps = {s.name: sweep(items, s, _SWEEP) for s in scanners} if threshold_sweep else {}
    if as_json:
        payload: dict[str, object] = {"dataset": str(dataset), "items": len(items)}
        payload["results"] = [m.to_dict() for m in results]
        if sweeps:
            payload["sweep"] = {name: [m.to_dict() for m in rows] for name, rows in sweeps.items()}
        typer.echo(json.dumps(payload, indent=2))
        return
    _out.print(_table(f"{dataset.name}: {len(items)} items", results))
    for name, rows in sweeps.items():
        _out.print(_table(f"{name}: threshold sweep on the tuning split", rows))
