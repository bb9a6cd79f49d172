"""Replicas that start at the same moment on one PostgreSQL database all come up (their tables are created once)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from services.benefits.application import build_benefits
from services.deadlines.application import build_deadlines
from services.disclosures.log import build_disclosures
from services.intake.application import build_intake
from shared.infra.settings import Settings


@pytest.mark.postgres
def test_replicas_starting_together_on_postgres_all_come_up(postgres: object, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", store="postgres",
                        postgres_url=postgres.new_database())  # type: ignore[attr-defined]
    builders = [build_intake, build_deadlines, build_benefits, build_disclosures] * 3
    barrier = threading.Barrier(len(builders))
    errors: list[BaseException] = []
    apps: list[object] = []

    def start(build: object) -> None:
        barrier.wait()
        try:
            apps.append(build(settings))  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(build,)) for build in builders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(apps) == len(builders)
    for app in apps:
        app.close()  # type: ignore[attr-defined]
