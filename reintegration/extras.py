"""The operator CLI's door to the lab (``lab/``: demo, benchmarks, fault scenarios). The lab ships in the source
distribution, not in the production image; there its commands say so instead of failing with a traceback."""

from __future__ import annotations

import importlib
from types import ModuleType

import typer
from rich.console import Console


def lab_module(name: str) -> ModuleType:
    """``lab.<name>``, or exit 2 with a clear message where the lab is not installed."""
    try:
        return importlib.import_module(f"lab.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("lab", f"lab.{name}"):
            raise
        Console(stderr=True).print(
            "[red]the lab (demo, benchmarks, fault scenarios) is not installed in this image[/]: "
            "run it from a source checkout (`pip install -e .`)"
        )
        raise typer.Exit(2) from None
