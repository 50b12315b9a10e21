"""``disrupt targets`` and ``disrupt attacks``: what is registered.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from disrupt.cli.app import app


@app.command("targets")
def list_targets_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the registered generator targets."""
    from disrupt.api import default_targets
    from targets import list_targets
    from targets.bundled import weights_installed

    defaults = set(default_targets())
    rows = []
    for info in list_targets():
        if info.bundled:
            if info.name in defaults:
                kind = "bundled (default)"
            elif weights_installed(info.name):
                kind = "bundled (by name)"
            else:
                kind = "bundled (not installed)"
        else:
            kind = "needs --weights" if info.needs_weights else "random init (tests)"
        rows.append({"name": info.name, "kind": kind, "description": info.description})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows) if rows else 0
    for r in rows:
        typer.echo(f"{r['name']:<{width}}  {r['kind']:<23}  {r['description']}")


@app.command("attacks")
def list_attacks_cmd() -> None:
    """List the registered attacks."""
    from attacks import list_attacks

    for name, description in list_attacks():
        typer.echo(f"{name:<8}  {description}")
