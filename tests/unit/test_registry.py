"""The service registry is the one service list: every entry runs, may connect, and is what the CLI serves."""

from __future__ import annotations

import inspect

import pytest
import typer.main

from reintegration.cli import app
from services.registry import DERIVED, SERVICES, ServiceEntry
from shared.infra.parties import SERVICE_PERMISSIONS


def _command_paths() -> set[tuple[str, ...]]:
    root = typer.main.get_command(app)
    paths: set[tuple[str, ...]] = set()

    def walk(command: object, path: tuple[str, ...]) -> None:
        paths.add(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(root, ())
    return paths


@pytest.mark.parametrize("entry", SERVICES, ids=lambda e: e.name)
def test_every_service_has_its_permissions(entry: ServiceEntry) -> None:
    assert entry.name in SERVICE_PERMISSIONS


@pytest.mark.parametrize("entry", SERVICES, ids=lambda e: e.name)
def test_every_service_has_the_command_that_runs_it(entry: ServiceEntry) -> None:
    assert entry.args in _command_paths()


@pytest.mark.parametrize("entry", SERVICES, ids=lambda e: e.name)
def test_every_root_loads_and_takes_settings_and_a_clock(entry: ServiceEntry) -> None:
    root = entry.load()
    parameters = inspect.signature(root).parameters
    assert next(iter(parameters)) == "settings"
    if entry.args[:1] == ("serve",):  # what `serve` calls: build_app(settings, *, clock)
        assert entry.root.endswith(":build_app")
        assert parameters["clock"].kind is inspect.Parameter.KEYWORD_ONLY


def test_the_derived_services_open_their_application() -> None:
    assert DERIVED == ("deadlines", "benefits")
    for entry in SERVICES:
        assert (entry.application is not None) == entry.derived
        if entry.application is not None:
            assert callable(entry.load(entry.application))
