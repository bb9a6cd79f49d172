"""The README runs: every block marked ``<!-- runnable -->`` runs as written, in order, in one shell, in a fresh
folder beside this project's virtual environment (the blocks start a demo of their own), and does what the README
says (``<!-- runnable: expect "TEXT" -->``: its output holds TEXT; ``<!-- runnable: file NAME -->``: the block is
the content of the file NAME that later blocks use)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKED = re.compile(r"<!-- runnable(?::\s*(?P<how>.*?))? -->\n```(?P<lang>\w*)\n(?P<body>.*?)\n```", re.S)


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    body: str
    expect: str | None = None
    file: str | None = None


def runnable_blocks(text: str) -> list[Block]:
    blocks = []
    for match in MARKED.finditer(text):
        how = (match["how"] or "").strip()
        expect = re.fullmatch(r'expect "(.+)"', how)
        file = re.fullmatch(r"file (\S+)", how)
        if how and not (expect or file):
            raise AssertionError(f"README line {text.count(chr(10), 0, match.start()) + 1}: unknown mark {how!r}")
        blocks.append(Block(line=text.count("\n", 0, match.start()) + 2, lang=match["lang"], body=match["body"],
                            expect=expect[1] if expect else None, file=file[1] if file else None))
    return blocks


def test_the_marks_are_found() -> None:
    blocks = runnable_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 4 and all(b.lang == "sh" or b.file for b in blocks), blocks


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="the README's commands run from a virtual environment")
def test_every_runnable_block_of_the_readme_does_what_the_readme_says(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    script = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT"]
    blocks = runnable_blocks((ROOT / "README.md").read_text())
    for n, block in enumerate(blocks):
        if block.file:
            (tmp_path / block.file).write_text(block.body + "\n")
            continue
        script += [f"echo '<<<block {n}>>>'", block.body, f"echo '<<<block {n} done>>>'"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REINTEGRATION_")}
    shell = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**env, "COLUMNS": "80"}, start_new_session=True)
    try:
        stdout, stderr = shell.communicate(timeout=600)
    except subprocess.TimeoutExpired:  # the demo a block started, and its processes, go with the shell
        os.killpg(shell.pid, signal.SIGTERM)
        stdout, stderr = shell.communicate(timeout=60)
    result = subprocess.CompletedProcess(shell.args, shell.returncode, stdout, stderr)
    out = result.stdout
    for n, block in enumerate(blocks):
        if block.file:
            continue
        assert f"<<<block {n} done>>>" in out, (
            f"README line {block.line}: the block did not finish (exit {result.returncode})\n{out[-3000:]}\n"
            f"{result.stderr[-3000:]}\n{_tail(tmp_path / 'demo.log')}")
        said = out.split(f"<<<block {n}>>>", 1)[1].split(f"<<<block {n} done>>>", 1)[0]
        if block.expect:
            assert block.expect in said, f"README line {block.line}: no {block.expect!r} in\n{said}"
    assert result.returncode == 0, result.stderr[-3000:]


def _tail(path: Path) -> str:
    return path.read_text()[-3000:] if path.exists() else ""
