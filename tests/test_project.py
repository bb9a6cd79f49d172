"""The project's documents stay true: compose.yaml validates, the AsyncAPI document is current, the demo runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_validates_against_the_compose_specification() -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "check-jsonschema", "--builtin-schema", "vendor.compose-spec",
         ROOT / "compose.yaml"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_asyncapi_document_is_generated_from_the_code() -> None:
    from reintegration.contract_docs import render_asyncapi

    committed = (ROOT / "docs" / "asyncapi.json").read_text()
    assert committed == render_asyncapi(), "docs/asyncapi.json is stale: run `reintegration asyncapi`"


def test_demo_runs_on_the_embedded_default(tmp_path: Path) -> None:
    """The README's first command, small: the embedded nats-server, SQLite, intake, relay and seeded cases."""
    result = subprocess.run(
        [sys.executable, "-m", "reintegration", "demo", "--cases", "60", "--data-dir", "demo"],  # relative, as typed
        capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "160", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every reply is the one the rules call for" in result.stdout
    assert "all published" in result.stdout
    assert (tmp_path / "demo" / "intake.sqlite").exists()
