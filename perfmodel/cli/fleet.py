"""``perfmodel fleet scheduler | worker | status``: a board farm on Dask distributed (docs/fleet.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from perfmodel.cli.options import json_option

fleet_app = typer.Typer(help="A board farm on Dask distributed: a scheduler, one worker per board, and their "
                        "status. Campaigns across the farm: perfmodel collect --scheduler ADDRESS. See docs/fleet.md.",
                        no_args_is_help=True)

TLS_CA = typer.Option(None, "--tls-ca-file", help="TLS: the CA certificate (PEM) that signed every member's "
                      "certificate; with --tls-cert and --tls-key (mutual TLS, address tls://...).")
TLS_CERT = typer.Option(None, "--tls-cert", help="TLS: this member's certificate (PEM).")
TLS_KEY = typer.Option(None, "--tls-key", help="TLS: this member's private key (PEM).")


def _security(ca: Path | None, cert: Path | None, key: Path | None):
    from perfmodel.collect.fleet import make_security

    return make_security(*(str(x) if x is not None else None for x in (ca, cert, key)))


def _ready(what: str):
    def say(address: str) -> None:
        typer.echo(f"{what} at {address}", err=True)

    return say


@fleet_app.command("scheduler")
def scheduler_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default loopback only; e.g. "
                             "0.0.0.0 for a farm on a network: use TLS there)."),
    port: int = typer.Option(8786, "--port", help="TCP port (0: any free one, printed)."),
    tls_ca_file: Path = TLS_CA, tls_cert: Path = TLS_CERT, tls_key: Path = TLS_KEY,
) -> None:
    """Start the farm's Dask scheduler (runs until Ctrl-C); prints its address on stderr."""
    from perfmodel.collect.fleet import serve_scheduler

    serve_scheduler(host, port, _security(tls_ca_file, tls_cert, tls_key), on_ready=_ready("scheduler"))


@fleet_app.command("worker")
def worker_cmd(
    address: str = typer.Argument(..., help="The scheduler's address, e.g. tcp://127.0.0.1:8786."),
    board: str = typer.Option(..., "--board", help="This board's name (letters, digits, '.', '-'), unique in "
                              "the farm: it names its cells and records."),
    tls_ca_file: Path = TLS_CA, tls_cert: Path = TLS_CERT, tls_key: Path = TLS_KEY,
) -> None:
    """Join the farm as board --board: a Dask worker with one slot (cells never overlap on a board) that
    publishes the board's facts and runs only perfmodel's cell tasks (runs until Ctrl-C)."""
    from perfmodel.collect.fleet import check_board_name, serve_board

    check_board_name(board)
    serve_board(address, board, _security(tls_ca_file, tls_cert, tls_key), on_ready=_ready(f"board {board} worker"))


def _sources(items: list, key: str = "name") -> str:
    ok = [str(s.get(key)) for s in items or [] if s.get("available")]
    return ", ".join(ok) or "none"


@fleet_app.command("status")
def status_cmd(
    address: str = typer.Argument(..., help="The scheduler's address."),
    tls_ca_file: Path = TLS_CA, tls_cert: Path = TLS_CERT, tls_key: Path = TLS_KEY,
    json_out: bool = json_option("Print the boards as JSON."),
) -> None:
    """The farm's boards: connected or not, CPU, framework versions, counter and sensor sources, and the cells
    each is running."""
    from perfmodel.collect.fleet import connect, fleet_boards

    client = connect(address, _security(tls_ca_file, tls_cert, tls_key))
    try:
        boards = fleet_boards(client)
    finally:
        client.close()
    if json_out:
        typer.echo(json.dumps(boards, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    from perfmodel.versions import FRAMEWORK_LIBRARY

    t = Table(title=f"perfmodel fleet at {address}: {sum(e['connected'] for e in boards.values())} board(s) "
                    "connected")
    for c in ("board", "state", "cpu", "cores", "frameworks", "counters", "sensors", "doing"):
        t.add_column(c, overflow="fold")
    for name, e in sorted(boards.items()):
        f = e.get("facts") or {}
        system = f.get("system") or {}
        versions = f.get("versions") or {}
        fws = ", ".join(f"{fw} {versions.get(lib)}" for fw, lib in FRAMEWORK_LIBRARY.items()
                        if versions.get(lib) not in (None, "missing"))
        state = "connected" if e["connected"] else "gone"
        t.add_row(name, state, str(system.get("cpu_model", "?")), str(system.get("cores_logical",
                  system.get("cores", "?"))), fws or "none", _sources(f.get("counters")),
                  _sources(f.get("sensors"), "kind"), ", ".join(e["doing"]) or ("idle" if e["connected"] else "-"))
    Console(width=160).print(t)


def register(app: typer.Typer) -> None:
    app.add_typer(fleet_app, name="fleet")
