"""The parties' commands: ``reintegration submit`` (a sender's file of reports), printed for people.

The work is :mod:`reintegration.client`'s; this module reads the file, shows progress and a summary, and writes the
replies."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .client import Submitted, intake_subject_of, submit, summarise
from .errors import NEGATIVE, OK, UNREACHABLE, USAGE
from .tables import Column, Row, print_table

out = Console()
err = Console(stderr=True)


def server_of(server: str | None, credentials: Any) -> str:
    """The server to reach: ``--server``, else the credentials file's URL, else ``REINTEGRATION_NATS_URL``, else
    the default local server."""
    return server or credentials.url or os.environ.get("REINTEGRATION_NATS_URL") or "nats://127.0.0.1:4222"


def submit_file(path: Path, creds: Path, *, server: str | None, replies: Path | None, timeout: float,
                attempts: int, as_json: bool) -> int:
    """Send every report of ``path`` as the party of ``creds``; prints the summary (and writes ``replies``).
    Exit code 0 when every report was accepted (or had been), 1 when any was rejected or not sent, 3 when any had no
    final answer (send the file again: what was recorded is answered as a duplicate)."""
    from shared.infra.parties import load_credentials

    from .connect import connect_party

    credentials = load_credentials(creds)
    try:
        intake_subject_of(credentials.party)
    except ValueError as exc:
        err.print(f"{creds}: {exc}", highlight=False, soft_wrap=True)
        return USAGE
    lines = path.read_text(encoding="utf-8").splitlines()
    total = sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))
    url = server_of(server, credentials)

    async def run() -> list[Submitted]:
        nc = await connect_party(credentials, url)
        columns = (TextColumn(f"submitting as {credentials.party}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[tally]}"))
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task("submit", total=total, tally="")
            seen: dict[str, int] = {}

            def done(result: Submitted) -> None:
                seen[result.outcome] = seen.get(result.outcome, 0) + 1
                progress.update(task, advance=1, tally=", ".join(f"{n} {k}" for k, n in sorted(seen.items())))

            try:
                return await submit(nc, credentials.party, lines, timeout=timeout, attempts=attempts, done=done)
            finally:
                await nc.close()

    results = asyncio.run(run())
    if replies is not None:
        with replies.open("w", encoding="utf-8") as f:
            for result in results:
                f.write(json.dumps(result.as_json(), ensure_ascii=False) + "\n")
    summary = summarise(results)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        _print_summary(summary, results, credentials.party, url, replies)
    if summary["unanswered"]:
        return UNREACHABLE
    return NEGATIVE if summary["rejected"] or summary["not_sent"] else OK


def _print_summary(summary: dict[str, Any], results: list[Submitted], party: str, url: str,
                   replies: Path | None) -> None:
    counts = ", ".join(f"{summary[k]} {k.replace('_', ' ')}" for k in
                       ("accepted", "duplicate", "rejected", "unanswered", "not_sent") if summary[k])
    out.print(f"{summary['lines']} report(s) in the file, sent as {party} to {url}: {counts or 'nothing to send'}"
              + (f" ({summary['retried']} needed more than one attempt)" if summary["retried"] else ""),
              soft_wrap=True)
    if summary["rejections"]:
        print_table(out, [Column("code"), Column("field"), Column("rule", spill=True), Column("regime", spill=True),
                          Column("reports", right=True)],
                    [Row([r["code"], r["field"] or "-", r["rule"] or "-", r["regime"] or "-", str(r["reports"])])
                     for r in summary["rejections"]], title="rejected, by code", blank_lines=False)
    trouble = [r for r in results if r.outcome in ("rejected", "unanswered", "not_sent")]
    if trouble:
        rows = []
        for r in trouble[:20]:
            message = r.error or (r.reply.message if r.reply is not None and hasattr(r.reply, "message") else "")
            rows.append(Row([str(r.line), r.outcome, r.report_id or "-"], below=[message]))
        print_table(out, [Column("line", right=True), Column("outcome"), Column("report id")], rows,
                    title="lines to look at" + (f" (the first 20 of {len(trouble)})" if len(trouble) > 20 else ""))
    if replies is not None:
        out.print(f"every reply, one JSON object a line: {replies}", soft_wrap=True)
    if summary["unanswered"]:
        out.print("some reports had no final answer: send the same file again later; what was recorded meanwhile is "
                  "answered as a duplicate, never stored twice", soft_wrap=True)


def follow_feed(creds: Path, *, server: str | None, out_file: Path | None, run: str | None, state_file: Path | None,
                start: str | None, until_caught_up: bool) -> int:
    """An employer's follower (:func:`reintegration.client.follow`): each message of its feed, once and in order,
    to ``out_file`` (a JSON line, written and synced before it is acknowledged), to ``run`` (a command that reads it
    on stdin), or to stdout. Exit code 0 when stopped (Ctrl-C) or caught up, 1 when ``run`` failed on a message
    (the next start resumes at that message), 2 on a bad option."""
    import signal
    from datetime import datetime

    from shared.infra.parties import load_credentials

    from .client import FeedDelivery, FollowState, follow, written_positions
    from .connect import connect_party

    credentials = load_credentials(creds)
    role, _, enterprise = credentials.party.partition(":")
    if role != "employer":
        err.print(f"{creds}: {credentials.party} has no feed: only an employer follows its own", highlight=False)
        return USAGE
    if out_file is not None and run is not None:
        err.print("--out and --exec: give one of them", highlight=False)
        return USAGE
    start_time = None
    if start is not None:
        try:
            start_time = datetime.fromisoformat(start)
        except ValueError:
            start_time = None
        if start_time is None or start_time.utcoffset() is None:
            err.print(f"--from {start!r}: a time with its offset, e.g. 2026-01-01T00:00:00+01:00", highlight=False)
            return USAGE
    if state_file is None:
        state_file = (out_file.with_name(out_file.name + ".state") if out_file is not None
                      else Path(f"follow-{enterprise}.state"))
    try:
        state = FollowState(state_file, enterprise, resume=start_time is None)
    except (ValueError, OSError) as exc:
        err.print(f"{state_file}: {exc}", highlight=False)
        return USAGE
    if out_file is not None and start_time is None:
        state.at_least(written_positions(out_file))  # a line written just before a crash is not written again
    url = server_of(server, credentials)
    failed: list[str] = []

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        nc = await connect_party(credentials, url)
        sink = out_file.open("a", encoding="utf-8") if out_file is not None else None
        where = ", ".join(f"{s} after #{n}" for s, n in sorted(state.last.items())) or (
            f"from {start_time.isoformat()}" if start_time else "from the start")
        err.print(f"following the feed of employer {enterprise} at {url} ({where}); Ctrl-C stops, and the next run "
                  f"resumes after the last message handled (kept in {state_file})", highlight=False, soft_wrap=True)

        async def handle(delivery: FeedDelivery) -> None:
            text = json.dumps(delivery.as_json(), ensure_ascii=False)
            if sink is not None:
                sink.write(text + "\n")
                sink.flush()
                os.fsync(sink.fileno())
            elif run is not None:
                child = await asyncio.create_subprocess_shell(run, stdin=asyncio.subprocess.PIPE)
                await child.communicate((text + "\n").encode())
                if child.returncode != 0:
                    failed.append(f"`{run}` exited {child.returncode} on {delivery.stream} #{delivery.sequence} "
                                  f"({delivery.headers.get('Nats-Msg-Id', '-')}): not acknowledged; the next run "
                                  "starts with it")
                    raise RuntimeError(failed[-1])
            else:
                print(text, flush=True)

        try:
            return await follow(nc, enterprise, handle, state=state, stop=stop, start_time=start_time,
                                until_caught_up=until_caught_up)
        except RuntimeError:
            if failed:
                return -1
            raise
        finally:
            if sink is not None:
                sink.close()
            await nc.close()

    handled = asyncio.run(main())
    if handled < 0:
        err.print(failed[-1], highlight=False, soft_wrap=True)
        return NEGATIVE
    err.print(f"{handled} message(s) handled; positions: "
              + (", ".join(f"{s} #{n}" for s, n in sorted(state.last.items())) or "none yet"), highlight=False)
    return OK


def ask_question(creds: Path, question: str, case_id: str, *, server: str | None, item_id: str | None,
                 at: str | None, day: str | None, version: int | None, on: str | None, as_json: bool,
                 out_file: Path | None) -> int:
    """An auditor's (or a party's query) question over NATS, printed as the local ``reintegration audit`` command
    prints it; ``--json`` prints the whole reply (for an audit question: who asked, the disclosure record, the
    answer). Exit code 0 answered, 1 for a case that does not verify, 2 refused or a bad option."""
    import msgspec

    from services.audit.questions import QUESTIONS
    from shared.infra.parties import load_credentials

    from . import audit_cli
    from .client import AUDIT_QUESTIONS, QUERY_QUESTIONS, AskRefused, ask
    from .connect import connect_party
    from .operate import print_deadlines, print_ledger

    if question not in (*AUDIT_QUESTIONS, *QUERY_QUESTIONS):
        err.print(f"unknown question {question!r}: ask one of {', '.join((*AUDIT_QUESTIONS, *QUERY_QUESTIONS))}",
                  highlight=False)
        return USAGE
    body: dict[str, Any] = {"case_id": case_id}
    given = {"item_id": item_id, "time": at, "date": day, "version": version, "on": on}
    body.update({k: v for k, v in given.items() if v is not None})
    if question == "explain" and item_id is None:
        err.print("explain needs ITEM_ID (a deadline or ledger entry id, or its first 8 characters)", highlight=False)
        return USAGE
    credentials = load_credentials(creds)
    url = server_of(server, credentials)

    async def main() -> dict[str, Any]:
        nc = await connect_party(credentials, url)
        try:
            return await ask(nc, question, body)
        finally:
            await nc.close()

    try:
        reply = asyncio.run(main())
    except AskRefused as exc:
        refusal = exc.refusal
        err.print(f"refused: {refusal.get('error')}" + (f" (field {refusal['field']})" if refusal.get("field") else "")
                  + (f" [{refusal['code']}]" if refusal.get("code") else ""), highlight=False, soft_wrap=True,
                  markup=False)
        return USAGE
    if question == "dossier" and out_file is not None:
        out_file.write_text(json.dumps(reply["answer"], indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        err.print(f"the dossier of case {case_id}: {out_file} (disclosure record {reply['disclosure']})",
                  highlight=False)
        return OK
    if as_json or question == "dossier":
        out.print_json(json.dumps(reply, ensure_ascii=False))
        return OK
    if question in QUERY_QUESTIONS:
        if question == "deadlines":
            print_deadlines(reply["deadlines"], f"Deadlines of case {case_id} (after {reply['source_version']} "
                            "events)", to=out)
        else:
            print_ledger(reply["entries"], f"Ledger of case {case_id} (after {reply['source_version']} events)",
                         events=reply.get("events"), to=out)
        return OK
    answer = msgspec.convert(reply["answer"], QUESTIONS[question].answer, strict=False)
    code = OK
    if question == "history":
        audit_cli.print_history(answer, case_id)
    elif question == "asof":
        audit_cli.print_as_of(answer)
    elif question == "applied":
        from datetime import date

        audit_cli.print_applied(answer, date.fromisoformat(on) if on else None)
    elif question == "explain":
        audit_cli.print_explanation(answer)
    elif question == "verify":
        audit_cli.print_verdict(answer)
        code = NEGATIVE if answer.status in ("parked", "different", "broken") else OK
    elif question == "disclosures":
        print_table(out, [Column("when"), Column("kind"), Column("who", spill=True)], [
            Row([d.disclosed_at.isoformat(timespec="seconds"), d.kind, d.who],
                below=[f"what: {d.what}", f"legal basis: {d.legal_basis}"]) for d in answer.records],
            title=f"{len(answer.records)} disclosures of case {case_id}")
    err.print(f"asked as {reply['asked_by']} at {reply['answered_at']}; disclosure record {reply['disclosure']}",
              highlight=False, style="dim")
    return code
