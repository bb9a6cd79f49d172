"""``reintegration``: run the embedded system, feed the demo, run a service, relay, measure, document."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from shared.infra.settings import Settings

from . import logs
from .audit_cli import audit_app
from .chaos import chaos_app
from .dead_letters import dead_letters_app

app = typer.Typer(
    help="Re-integration trajectories of Belgian workers on long-term incapacity: an event-sourced backend.",
    no_args_is_help=True,
    add_completion=False,
)
serve_app = typer.Typer(help="Run one service in the foreground (what `up` and compose.yaml start).")
bench_app = typer.Typer(help="Benchmarks over a real nats-server, each against a raw baseline in the same run.")
parties_app = typer.Typer(help="NATS accounts, users and credentials per party (docs/parties.md).")
app.add_typer(serve_app, name="serve")
app.add_typer(bench_app, name="bench")
app.add_typer(audit_app, name="audit")
app.add_typer(parties_app, name="parties")
app.add_typer(dead_letters_app, name="dead-letters")
app.add_typer(chaos_app, name="chaos")
console = Console(stderr=True)

DataDir = Annotated[Path, typer.Option("--data-dir", envvar="REINTEGRATION_DATA_DIR", help="Folder for all data.")]


def _install_stop(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


@app.command()
def up(
    data_dir: DataDir = Path("data"),
    port: Annotated[int, typer.Option(help="NATS client port of the embedded server.")] = 4222,
    cluster: Annotated[bool, typer.Option(
        "--cluster", help="The cluster shape: 3 NATS nodes (free ports), R3 streams, PostgreSQL, two replicas of "
        "deadlines and benefits.")] = False,
) -> None:
    """Start the embedded nats-server, the event store and the services; Ctrl-C stops them all."""
    from .runtime import Runtime

    logs.configure()
    shape = {"cluster": 3, "replicas": 2} if cluster else {}
    runtime = Runtime(Settings.from_env(data_dir=data_dir), nats_port=port, **shape)  # type: ignore[arg-type]
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        settings = runtime.start()
        runtime.wait_ready()
        console.print(f"[green]reintegration is up[/]: NATS at {settings.nats_url}, data in {data_dir.resolve()}")
        console.print(f"  intake subjects: reintegration.intake.<party_kind>.<party_id>; logs in {runtime.logs_dir}")
        if runtime.credentials:
            console.print(f"  parties: {runtime.parties_file}; credentials in {data_dir / 'parties'} (docs/parties.md)")
        console.print("  Ctrl-C stops everything.")
        while not stopping:
            runtime.supervise_once()
            time.sleep(0.5)
    finally:
        console.print("stopping ...")
        runtime.stop()
        console.print("stopped.")


@app.command()
def demo(
    data_dir: DataDir = Path("data/demo"),
    cases: Annotated[int, typer.Option(help="How many cases to generate.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the generated cases (same seed, same cases).")] = 2026,
    port: Annotated[int, typer.Option(help="NATS client port (0: a free port).")] = 0,
    keep_running: Annotated[bool, typer.Option(help="Leave the system running after the demo.")] = False,
) -> None:
    """Start the system and feed it a seeded, realistic set of cases through the real intake subjects."""
    from .demo import run_demo

    logs.configure("WARNING")
    raise typer.Exit(run_demo(data_dir=data_dir, cases=cases, seed=seed, port=port, keep_running=keep_running))


@serve_app.command("intake")
def serve_intake() -> None:
    """Run the intake service (request-reply on reintegration.intake.>)."""
    from services.intake.main import build_app

    logs.configure()
    settings = Settings.from_env()
    stream_app, _ = build_app(settings)
    asyncio.run(stream_app.run())


def _serve_derived(module: str) -> None:
    import importlib

    logs.configure()
    service = importlib.import_module(module).build_service(Settings.from_env())
    asyncio.run(service.stream_app.run())


@serve_app.command("deadlines")
def serve_deadlines() -> None:
    """Run the deadlines service: trajectory consumer, timers, outbox relay and query subject."""
    _serve_derived("services.deadlines.main")


@serve_app.command("benefits")
def serve_benefits() -> None:
    """Run the benefits service: trajectory consumer, outbox relay and query subject."""
    _serve_derived("services.benefits.main")


@serve_app.command("disclosures")
def serve_disclosures() -> None:
    """Run the disclosures service: records every message delivered to an employer's feed."""
    from services.disclosures.main import build_app

    logs.configure()
    asyncio.run(build_app(Settings.from_env()).run())


@serve_app.command("feeds")
def serve_feeds() -> None:
    """Run the feeds service: opens employers' pull consumers on their own feed (reintegration.feed.<enterprise>)."""
    from shared.infra.parties import run_feeds

    logs.configure()
    settings = Settings.from_env()

    async def main() -> None:
        stop = asyncio.Event()
        _install_stop(asyncio.get_running_loop(), stop)
        await run_feeds(settings.nats_servers, settings.nats_credentials, stop)

    asyncio.run(main())


@serve_app.command("audit")
def serve_audit() -> None:
    """Run the audit service: the auditors' read-only request subjects (reintegration.audit.>)."""
    from services.audit.main import build_app

    logs.configure()
    asyncio.run(build_app(Settings.from_env()).run())


@parties_app.command("config")
def parties_config(
    parties_file: Annotated[Path, typer.Argument(help="The parties file (TOML), e.g. deploy/parties.dev.toml.")],
    out: Annotated[Path, typer.Option(help="Folder for accounts.conf and the credentials files.")] = Path("parties"),
    url: Annotated[Optional[str], typer.Option(help="Server URL written into each credentials file.")] = None,
    rotate: Annotated[bool, typer.Option(help="New keys for every party (existing ones are kept otherwise).")] = False,
) -> None:
    """Write the nats-server accounts (include accounts.conf in nats.conf) and one credentials file per party."""
    from rich.table import Table

    from shared.infra.parties import PartiesError, write_config

    try:
        conf, credentials = write_config(parties_file, out, url=url, rotate=rotate)
    except PartiesError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    table = Table("party", "credentials", title=f"{len(credentials)} parties; server accounts in {conf}")
    for name, path in credentials.items():
        table.add_row(name, str(path))
    console.print(table)


@app.command()
def disclosures(
    data_dir: DataDir = Path("data"),
    who: Annotated[Optional[str], typer.Option(help="Only this party, e.g. employer:0403170701.")] = None,
    case: Annotated[Optional[str], typer.Option(help="Only this case id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """The disclosure log: every delivery to an employer and every auditor query (who, what, basis, when)."""
    import json
    import sys
    import uuid

    import msgspec
    from rich.table import Table

    from services.disclosures.log import build_disclosures

    log_app = build_disclosures(Settings.from_env(data_dir=data_dir))
    try:
        records = list(log_app.records(who=who, case_id=uuid.UUID(case) if case else None))
    finally:
        log_app.close()
    if as_json:
        for record in records:
            sys.stdout.write(json.dumps(msgspec.to_builtins(record), default=str) + "\n")
        return
    table = Table("when", "kind", "who", "what", "case", "legal basis", title=f"{len(records)} disclosures")
    for record in records:
        table.add_row(record.disclosed_at.isoformat(timespec="seconds"), record.kind, record.who, record.what,
                      str(record.case_id or ""), record.legal_basis)
    console.print(table)


CaseOrRebuild = Annotated[str, typer.Argument(help="A case id, or `rebuild` to rebuild from the intake store.")]
Fresh = Annotated[bool, typer.Option(help="With rebuild: delete the service's store first.")]
FromPosition = Annotated[int, typer.Option("--from", help="With rebuild: first intake store position.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _case_or_rebuild(service: str, target: str, data_dir: Path, fresh: bool, start: int, as_json: bool) -> None:
    import uuid

    from . import operate

    settings = Settings.from_env(data_dir=data_dir)
    if target == "rebuild":
        module = __import__(f"services.{service}.application", fromlist=["x"])
        operate.rebuild(getattr(module, f"build_{service}"), settings, service, fresh=fresh, start=start)
        return
    try:
        case_id = uuid.UUID(target)
    except ValueError:
        console.print(f"[red]{target!r} is neither a case id nor `rebuild`[/]")
        raise typer.Exit(2) from None
    show = operate.show_deadlines if service == "deadlines" else operate.show_ledger
    raise typer.Exit(show(settings, case_id, as_json))


@app.command()
def deadlines(
    target: CaseOrRebuild,
    data_dir: DataDir = Path("data"),
    fresh: Fresh = False,
    start: FromPosition = 1,
    as_json: AsJson = False,
) -> None:
    """A case's deadlines (open, met, missed) with their explanation; or `rebuild` from the intake store."""
    _case_or_rebuild("deadlines", target, data_dir, fresh, start, as_json)


@app.command()
def benefits(
    target: CaseOrRebuild,
    data_dir: DataDir = Path("data"),
    fresh: Fresh = False,
    start: FromPosition = 1,
    as_json: AsJson = False,
) -> None:
    """A case's benefit ledger with each entry's explanation; or `rebuild` from the intake store."""
    _case_or_rebuild("benefits", target, data_dir, fresh, start, as_json)


@app.command()
def simulate(
    file: Annotated[Path, typer.Argument(help="A case's reports, one JSON report per line.", exists=True)],
    as_json: AsJson = False,
    today: Annotated[Optional[str], typer.Option(help="The day of receipt (YYYY-MM-DD); default today.")] = None,
) -> None:
    """What if: the deadlines and ledger a case's reports produce, computed in memory without any server."""
    from .operate import simulate as run

    logs.configure("WARNING")
    raise typer.Exit(run(file, as_json, today))


@app.command()
def relay(
    from_position: Annotated[
        Optional[int], typer.Option("--from", help="Replay from this store position once, then exit.")
    ] = None,
    to_position: Annotated[Optional[int], typer.Option("--to", help="Last position of the replay.")] = None,
) -> None:
    """Relay recorded Case events into the TRAJECTORY stream, exactly once and in order."""
    from services.intake.outbox import run_relay

    logs.configure()
    settings = Settings.from_env()

    async def main() -> None:
        stop = asyncio.Event()
        _install_stop(asyncio.get_running_loop(), stop)
        result = await run_relay(settings, stop, from_position=from_position, to_position=to_position)
        if from_position is not None:
            console.print(f"replayed {result} events from position {from_position}")

    asyncio.run(main())


@bench_app.command("intake")
def bench_intake(
    reports: Annotated[int, typer.Option(help="Reports to push through intake.")] = 5000,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 32,
    relay_events: Annotated[int, typer.Option(help="Events for the relay benchmark.")] = 20000,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder (default: a temporary one).")] = None,
) -> None:
    """Intake reports/s and request-reply latency, and relay events/s, each against a raw NATS baseline."""
    from .bench import run_intake_bench

    logs.configure("WARNING")
    run_intake_bench(reports=reports, concurrency=concurrency, relay_events=relay_events, data_dir=data_dir)


@bench_app.command("derived")
def bench_derived(
    cases: Annotated[int, typer.Option(help="Cases whose events go through the deadlines and benefits services.")] = 2000,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder (default: a temporary one).")] = None,
) -> None:
    """Trajectory events/s through deadlines and benefits over a real nats-server (schedules written), against a
    raw JetStream consume-and-republish baseline in the same run; timers held and server memory."""
    from .bench_derived import run_derived_bench

    logs.configure("WARNING")
    run_derived_bench(cases=cases, data_dir=data_dir)


@bench_app.command("recompute")
def bench_recompute(
    cases: Annotated[int, typer.Option(help="Case histories to recompute.")] = 100_000,
    rebuild: Annotated[bool, typer.Option(help="Also rebuild both services' stores from an intake store.")] = True,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder (default: a temporary one).")] = None,
) -> None:
    """Deadlines and ledgers of N cases recomputed from scratch with the pure functions, and (with --rebuild) both
    services rebuilt from an intake store of N cases, each against reading the same events raw in the same run."""
    from .bench_derived import run_recompute_bench

    logs.configure("WARNING")
    run_recompute_bench(cases=cases, rebuild=rebuild, data_dir=data_dir)


@bench_app.command("audit")
def bench_audit(
    cases: Annotated[int, typer.Option(help="Cases for `audit verify` over all cases.")] = 100_000,
    events: Annotated[int, typer.Option(help="Events of the one long case replayed by the auditor.")] = 200,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder (default: a temporary one).")] = None,
) -> None:
    """Audit replay of one long case (ms, median) and `audit verify` over N cases (cases/s), each against reading
    the same events raw from the store in the same run."""
    from .bench_audit import run_audit_bench

    logs.configure("WARNING")
    run_audit_bench(cases=cases, events=events, data_dir=data_dir)


@bench_app.command("e2e")
def bench_e2e(
    cases: Annotated[int, typer.Option(help="Generated cases whose reports go through the whole system.")] = 5000,
    quick: Annotated[bool, typer.Option(help="A small run (for CI): a few hundred cases.")] = False,
    cluster: Annotated[bool, typer.Option(help="Run on a 3-node NATS cluster with R3 streams.")] = False,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder (default: a temporary one).")] = None,
) -> None:
    """Reports through intake, relay, deadlines and benefits over a real nats-server: reports/s, latency from report
    to deadline event (p50/p99), events/s per service, peak memory per process, against a raw JetStream 3-hop
    baseline in the same run; then the full rebuild of the projections against reading the raw store."""
    from .bench_e2e import run_e2e_bench

    logs.configure("WARNING")
    run_e2e_bench(cases=cases, quick=quick, cluster=cluster, data_dir=data_dir)


@app.command()
def keygen() -> None:
    """Print a new AES key for REINTEGRATION_CIPHER_KEY (stored events encrypted at rest)."""
    from eventsourcing.cipher import AESCipher

    print(AESCipher.create_key(16))


@app.command()
def asyncapi(
    out: Annotated[Path, typer.Option(help="Where to write the AsyncAPI document.")] = Path("docs/asyncapi.json"),
    check: Annotated[bool, typer.Option(help="Fail if the file differs from what would be generated.")] = False,
) -> None:
    """Generate the AsyncAPI document of the NATS contracts (FastStream, with msgspec's schemas)."""
    from .contract_docs import render_asyncapi

    text = render_asyncapi()
    if check:
        if not out.exists() or out.read_text() != text:
            console.print(f"[red]{out} is out of date[/]: run `reintegration asyncapi`")
            raise typer.Exit(1)
        console.print(f"{out} is up to date")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    console.print(f"wrote {out}")
