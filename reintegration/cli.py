"""``reintegration``: run the embedded system, feed the demo, run a service, relay, measure, document."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from shared.infra.settings import SYSTEM_FILE, Settings

from . import logs
from .audit_cli import audit_app
from .chaos import chaos_app
from .dead_letters import dead_letters_app
from .extras import lab_module

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

#: ``--debug`` (or ``REINTEGRATION_DEBUG=1``): an expected failure shows its traceback instead of one line.
_debug = {"on": False}


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", envvar="REINTEGRATION_DEBUG",
                                        help="Show the traceback of an expected failure (a setting, an unreachable "
                                        "server, a refused permission, a cipher key) instead of one line.")] = False,
) -> None:
    _debug["on"] = debug


def main() -> None:
    """The ``reintegration`` command: the app, with expected failures said in one line and a documented exit code
    (:mod:`reintegration.errors`)."""
    import sys

    from rich.markup import escape

    from .errors import DEFECT, describe

    try:
        app(standalone_mode=True)
    except Exception as exc:
        if _debug["on"]:
            raise
        cause: BaseException | None = exc
        while cause is not None:
            if (said := describe(cause)) is not None:
                console.print(f"[red]{escape(said[0])}[/]", highlight=False, soft_wrap=True)
                console.print("(`reintegration --debug ...` shows the traceback)", style="dim")
                sys.exit(said[1])
            cause = cause.__cause__ or cause.__context__
        import traceback

        traceback.print_exc()  # a defect: its traceback, and an exit code of its own (not a negative answer's 1)
        sys.exit(DEFECT)


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
        with console.status("starting nats-server, the event stores and the services ..."):
            settings = runtime.start()
            runtime.wait_ready()
        lines = [f"[green]reintegration is up[/]: NATS at {settings.nats_url}, data in {data_dir.resolve()}"]
        if settings.postgres_url:
            lines.append(f"  event store: {settings.postgres_url}")
        lines.append(f"  intake subjects: reintegration.intake.<party_kind>.<party_id>; logs in {runtime.logs_dir}")
        if runtime.credentials:
            lines.append(f"  parties: {runtime.parties_file}; credentials in {data_dir / 'parties'} (docs/parties.md)")
        lines.append(f"  operator commands read {data_dir / SYSTEM_FILE}; in another shell: "
                     f"eval \"$(reintegration env --data-dir {data_dir})\"")
        lines.append("  Ctrl-C stops everything.")
        for line in lines:  # URLs and paths whole, however narrow the terminal
            console.print(line, soft_wrap=True, highlight=False)
        runtime.supervisor.supervise_until(lambda: stopping)
    finally:
        console.print("stopping ...")
        runtime.stop()
        console.print("stopped.")


@app.command()
def env(
    data_dir: DataDir = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object instead of shell exports.")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait for a system that is starting there, until every "
                                             "service of it answers ready.", min=0)] = 0,
) -> None:
    """Print the settings of the system running with data in DATA_DIR (written there by `up` or `demo`) as shell
    exports: `eval "$(reintegration env --data-dir data/demo)"`. Exit code 2 when none runs there (or, with --wait,
    when it is not ready in time)."""
    import json
    import shlex
    import time

    from shared.infra.settings import read_system_file

    until = time.monotonic() + wait
    while (((system := read_system_file(data_dir)) is None or not system.running or not system.ready)
           and time.monotonic() < until):
        time.sleep(0.2)
    if system is None or not system.running:
        why = "no system runs" if system is None else f"the system that wrote {system.path} (pid {system.pid}) stopped"
        console.print(f"[red]{why} with data in {data_dir}[/]: start one with `reintegration up --data-dir "
                      f"{data_dir}` (or `reintegration demo --keep-running`, data in data/demo)", soft_wrap=True)
        raise typer.Exit(2)
    if not system.ready:
        if wait:
            console.print(f"[red]the system with data in {data_dir} (pid {system.pid}) is not ready after "
                          f"{wait:g} s[/]: `reintegration status --data-dir {data_dir}` says which service is not, "
                          "and why",
                          soft_wrap=True)
            raise typer.Exit(2)
        console.print(f"[yellow]the system with data in {data_dir} is still starting: not every service answers "
                      "yet (--wait SECONDS waits for it)[/]", soft_wrap=True)
    if "REINTEGRATION_NATS_CREDENTIALS" not in system.values:
        console.print("[yellow]no operator credentials: the parties file lists no `operator` service (or the server "
                      "runs open)[/]")
    if as_json:
        print(json.dumps(dict(system.values), indent=2))
        return
    for key, value in system.values.items():
        print(f"export {key}={shlex.quote(value)}")


@app.command()
def demo(
    data_dir: DataDir = Path("data/demo"),
    cases: Annotated[int, typer.Option(help="How many cases to generate.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the generated cases (same seed, same cases).")] = 2026,
    port: Annotated[int, typer.Option(help="NATS client port (0: a free port).")] = 0,
    keep_running: Annotated[bool, typer.Option(help="Leave the system running after the demo.")] = False,
) -> None:
    """Start the system and feed it a seeded, realistic set of cases through the real intake subjects."""
    run_demo = lab_module("demo").run_demo

    logs.configure("WARNING")
    raise typer.Exit(run_demo(data_dir=data_dir, cases=cases, seed=seed, port=port, keep_running=keep_running))


def _serve(name: str) -> None:
    """Run the registry's service ``name`` from its composition root, until a signal stops it."""
    from services.registry import service
    from shared.infra.clock import clock_from_env

    settings = Settings.from_env(system_file=False)
    logs.configure(json_lines=settings.log_format == "json")
    build_app = service(name).load()
    asyncio.run(_observed(name, settings, lambda: build_app(settings, clock=clock_from_env()).run()))


async def _observed(name: str, settings: Settings, run: Callable[[], Any]) -> Any:
    """Run a service process with its metrics, probes and traces (each only when its setting asks for it)."""
    from shared.infra import telemetry, tracing

    tracing.configure(settings.otlp_endpoint, name, settings.trace_sample)
    try:
        async with telemetry.served(name, settings.metrics_port, settings.metrics_address):
            return await run()
    finally:
        tracing.shutdown()


def _serve_command(name: str) -> Callable[[], None]:
    def command() -> None:
        _serve(name)

    return command


def _add_serve_commands() -> None:
    """``reintegration serve <name>`` for every service the registry runs that way (its summary is the help)."""
    from services.registry import SERVICES

    for entry in SERVICES:
        if entry.args[:1] == ("serve",):
            serve_app.command(entry.args[1], help=entry.summary)(_serve_command(entry.name))


_add_serve_commands()


@parties_app.command("config")
def parties_config(
    parties_file: Annotated[Path, typer.Argument(help="The parties file (TOML), e.g. deploy/parties.dev.toml.")],
    out: Annotated[Path, typer.Option(help="Folder for accounts.conf and the credentials files.")] = Path("parties"),
    url: Annotated[str | None, typer.Option(help="Server URL written into each credentials file.")] = None,
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
    console.print("beside each .creds file, for any standard NATS client: the nkey seed alone (.nk) and a JSON "
                  "profile with the inbox prefix (.json); all three are the party's secret (docs/parties.md)",
                  highlight=False)


@app.command()
def disclosures(
    data_dir: DataDir = Path("data"),
    who: Annotated[str | None, typer.Option(help="Only this party, e.g. employer:0403170701.")] = None,
    case: Annotated[str | None, typer.Option(help="Only this case id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """The disclosure log: every delivery to an employer and every auditor query (who, what, basis, when)."""
    import json
    import sys
    import uuid

    import msgspec

    from services.disclosures.log import build_disclosures

    from .operate import console as out
    from .operate import reader_env
    from .tables import Column, Row, print_table

    settings = Settings.from_env(data_dir=data_dir)
    if (env := reader_env(settings, "disclosures")) is None:
        raise typer.Exit(2)
    log_app = build_disclosures(settings, **env)
    try:
        records = list(log_app.records(who=who, case_id=uuid.UUID(case) if case else None))
    finally:
        log_app.close()
    if as_json:
        for record in records:
            sys.stdout.write(json.dumps(msgspec.to_builtins(record), default=str) + "\n")
        return
    # the full case id (what the audit commands take) always; who, when the width allows, else below with the rest
    columns = [Column("when"), Column("kind"), Column("case"), Column("who", spill=True)]
    print_table(out, columns, [
        Row([record.disclosed_at.isoformat(timespec="seconds"), record.kind, str(record.case_id or "-"), record.who],
            below=[f"what: {record.what}", f"legal basis: {record.legal_basis}"]) for record in records],
        title=f"{len(records)} disclosures")


Fresh = Annotated[bool, typer.Option(help="With rebuild: delete the service's store first.")]
FromPosition = Annotated[int, typer.Option("--from", help="With rebuild: first intake store position.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RecomputeDryRun = Annotated[bool, typer.Option("--dry-run", help="With recompute: count the changes, record none "
                                               "(the default without --yes).")]
RecomputeYes = Annotated[bool, typer.Option("--yes", help="With recompute: record the changes (the settings are "
                                            "this shell's REINTEGRATION_* variables: make sure they are the "
                                            "deployment's).")]


def _case_or_rebuild(service: str, target: str, data_dir: Path, fresh: bool, start: int, as_json: bool) -> None:
    import uuid

    from . import operate

    settings = Settings.from_env(data_dir=data_dir)
    if target == "rebuild":
        from services.registry import service as registered

        entry = registered(service)
        operate.rebuild(entry.load(entry.application), settings, service, fresh=fresh, start=start)
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
    target: Annotated[str, typer.Argument(
        help="A case id; `rebuild` to rebuild from the intake store; `recompute` to bring every stored schedule "
        "under the rulebook and policy now deployed.")],
    data_dir: DataDir = Path("data"),
    fresh: Fresh = False,
    start: FromPosition = 1,
    as_json: AsJson = False,
    dry_run: RecomputeDryRun = False,
    yes: RecomputeYes = False,
) -> None:
    """A case's deadlines (open, met, missed) with their explanation; `rebuild` from the intake store; or
    `recompute` after a release changed the rulebook or the deployment changed its policy (roll-forward, employer
    policies): a dry run by default; with --yes each case whose deadlines differ gets one recorded, published
    recomputation."""
    if not _recomputed("deadlines", target, data_dir, dry_run, yes):
        _case_or_rebuild("deadlines", target, data_dir, fresh, start, as_json)


def _recomputed(service: str, target: str, data_dir: Path, dry_run: bool, yes: bool) -> bool:
    """Run ``recompute`` when it is the target (true); refuse its options with any other target."""
    if target != "recompute":
        if dry_run or yes:
            raise typer.BadParameter("--dry-run and --yes go with `recompute`", param_hint="--dry-run/--yes")
        return False
    from .recompute import recompute

    if dry_run and yes:
        raise typer.BadParameter("--dry-run records nothing, --yes records: give one", param_hint="--yes")
    logs.configure("WARNING")
    recompute(Settings.from_env(data_dir=data_dir), service, dry_run=not yes)
    return True


@app.command(
    add_help_option=False,
    # `benefits contribution` takes options of its own: they are handed to it unparsed (see below).
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
def benefits(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Argument(
        help="A case id; `rebuild` to rebuild from the intake store; `contribution` for an employer's "
        "responsibility contribution (`reintegration benefits contribution --help`); `recompute` to bring every "
        "stored ledger under the rulebook and options now deployed.", show_default=False)] = None,
    data_dir: DataDir = Path("data"),
    fresh: Fresh = False,
    start: FromPosition = 1,
    as_json: AsJson = False,
    dry_run: RecomputeDryRun = False,
    yes: RecomputeYes = False,
    show_help: Annotated[bool, typer.Option("--help", help="Show this message and exit.")] = False,
) -> None:
    """A case's benefit ledger with each entry's explanation; or `rebuild` from the intake store; or
    `contribution`: an employer's responsibility contribution for a quarter; or `recompute` after a release changed
    the rulebook or the deployment its enabled announced rules (a dry run by default; with --yes each case whose
    ledger differs gets one recorded, published recomputation: new entries and reversals)."""
    if target == "contribution":
        # A sub-command under `benefits`, which otherwise takes a case id in the same place: its own parser gets
        # every argument `benefits` did not know (and --json, which both have).
        command = typer.main.get_command(contribution_app)
        args = [*ctx.args, *(["--json"] if as_json else []), *(["--help"] if show_help else [])]
        command.main(args=args, prog_name=f"{ctx.find_root().info_name} benefits contribution")
        return
    if show_help or target is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0 if show_help else 2)
    if ctx.args:
        raise typer.BadParameter(f"unexpected {' '.join(ctx.args)!r}", param_hint="TARGET")
    if not _recomputed("benefits", target, data_dir, dry_run, yes):
        _case_or_rebuild("benefits", target, data_dir, fresh, start, as_json)


contribution_app = typer.Typer(add_completion=False)


def _decimal_option(value: str, option: str, *, cents: bool = False) -> Decimal:
    """A non-negative decimal from its text, exactly (never through a float), or a usage error naming the option."""
    from decimal import InvalidOperation

    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not a decimal number (write e.g. 1234.56)", param_hint=option) from None
    if not number.is_finite():
        raise typer.BadParameter(f"{value!r} is not a finite number", param_hint=option)
    if number < 0:
        raise typer.BadParameter(f"{value} is negative", param_hint=option)
    if number >= Decimal("1e15"):  # beyond any employer's wages or rate: a typo, and past exact cents arithmetic
        raise typer.BadParameter(f"{value} is too large (at most 15 digits before the decimal point)",
                                 param_hint=option)
    if cents and number != number.quantize(Decimal("0.01")):
        raise typer.BadParameter(f"{value} has more than 2 decimals: give euro in cents", param_hint=option)
    return number


def _quarter_option(value: str) -> tuple[int, int]:
    """``2024-Q2`` (or ``2024Q2``) -> (2024, 2)."""
    import re

    match = re.fullmatch(r"(\d{4})-?[Qq]([1-4])", value.strip())
    if match is None:
        raise typer.BadParameter(f"{value!r}: write the year and quarter as 2024-Q2 (quarters 1-4)",
                                 param_hint="--quarter")
    return int(match[1]), int(match[2])


@contribution_app.command()
def contribution(
    enterprise: Annotated[str, typer.Option("--enterprise", help="The employer's enterprise number (10 digits).",
                                            show_default=False)],
    quarter: Annotated[str, typer.Option(help="The quarter the contribution is for, e.g. 2024-Q2.",
                                         show_default=False)],
    wages: Annotated[str, typer.Option(
        "--previous-quarter-wages", help="The employer's wages of the quarter before, euro as a decimal string "
        "(e.g. 1250000.00).", show_default=False)],
    staff: Annotated[int, typer.Option(help="Average number of workers over the reference period.",
                                       show_default=False, min=0)],
    invalidity_entries: Annotated[int, typer.Option(
        help="Workers who entered invalidity over the four reference quarters.", show_default=False, min=0)],
    inflow_rate: Annotated[str, typer.Option(help="The employer's inflow into invalidity (entries per worker, e.g. "
                                             "0.06).", show_default=False)],
    sector_inflow_rate: Annotated[str, typer.Option(help="Its sector's inflow into invalidity.",
                                                    show_default=False)],
    private_sector_inflow_rate: Annotated[str, typer.Option(help="The whole private sector's inflow.",
                                                            show_default=False)],
    as_json: AsJson = False,
) -> None:
    """The employer responsibility contribution for one quarter: due or not, how much, under which rule and legal
    basis, and each threshold against the employer's figures."""
    from shared.events.common import IdentifierError, normalise_enterprise_number
    from shared.rulebook import default_rulebook
    from shared.rulebook.benefits import ResponsibilityInput, responsibility_contribution

    from .operate import print_contribution

    try:
        enterprise_number = normalise_enterprise_number(enterprise, "--enterprise")
    except IdentifierError as exc:
        raise typer.BadParameter(exc.message, param_hint="--enterprise") from None
    year, q = _quarter_option(quarter)
    data = ResponsibilityInput(
        enterprise_number=enterprise_number, year=year, quarter=q, staff=staff,
        invalidity_entries=invalidity_entries,
        inflow_rate=_decimal_option(inflow_rate, "--inflow-rate"),
        sector_inflow_rate=_decimal_option(sector_inflow_rate, "--sector-inflow-rate"),
        private_sector_inflow_rate=_decimal_option(private_sector_inflow_rate, "--private-sector-inflow-rate"),
        previous_quarter_wages=_decimal_option(wages, "--previous-quarter-wages", cents=True),
    )
    raise typer.Exit(print_contribution(responsibility_contribution(data, default_rulebook()), data, as_json))


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="Reports, one JSON report per line, in the order to send them.",
                                         exists=True, dir_okay=False)],
    creds: Annotated[Path, typer.Option("--creds", help="The party's credentials file (health fund, occupational "
                                        "health service or employer).", exists=True, dir_okay=False)],
    server: Annotated[str | None, typer.Option(help="The NATS URL; default the credentials file's, else "
                                               "REINTEGRATION_NATS_URL.")] = None,
    replies: Annotated[Path | None, typer.Option(help="Write every reply here, one JSON object a line.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each reply before sending it again.")] = 5.0,
    attempts: Annotated[int, typer.Option(help="Attempts per report before giving up on it.", min=1)] = 10,
    as_json: AsJson = False,
) -> None:
    """Send a party's reports to intake: the same report (same report id) again on a timeout or a `retry: true`
    answer, with growing delays; never a new id. Safe to run again on the same file: what was recorded is answered
    as a duplicate. Exit code 1 when a report was rejected, 3 when one had no final answer."""
    from .party_cli import submit_file

    raise typer.Exit(submit_file(file, creds, server=server, replies=replies, timeout=timeout, attempts=attempts,
                                 as_json=as_json))


@app.command()
def follow(
    creds: Annotated[Path, typer.Option("--creds", help="The employer's credentials file.", exists=True,
                                        dir_okay=False)],
    server: Annotated[str | None, typer.Option(help="The NATS URL; default the credentials file's, else "
                                               "REINTEGRATION_NATS_URL.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Append each message here as a JSON line (synced "
                                             "before it is acknowledged).", dir_okay=False)] = None,
    run: Annotated[str | None, typer.Option("--exec", help="Hand each message, as one JSON line on stdin, to this "
                                            "command; a non-zero exit stops the follower at that message.")] = None,
    state: Annotated[Path | None, typer.Option(help="Where the position is kept; default OUT.state, else "
                                               "follow-<enterprise>.state.", dir_okay=False)] = None,
    start: Annotated[str | None, typer.Option("--from", help="Replay from this time (RFC 3339 with an offset) "
                                              "instead of resuming.")] = None,
    until_caught_up: Annotated[bool, typer.Option("--until-caught-up", help="Stop when nothing is left instead "
                                                  "of waiting for new messages.")] = False,
) -> None:
    """An employer's follower of its own feed (deadlines and ledger entries): each message once and in order, to a
    file, a command or stdout, acknowledged only once handled; it resumes where it stopped after Ctrl-C or a crash."""
    from .party_cli import follow_feed

    raise typer.Exit(follow_feed(creds, server=server, out_file=out, run=run, state_file=state, start=start,
                                 until_caught_up=until_caught_up))


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="history, asof, applied, explain, verify, dossier or disclosures "
                                            "(an auditor's), or deadlines or benefits (a query).")],
    case_id: Annotated[str, typer.Argument(help="The case id.")],
    creds: Annotated[Path, typer.Option("--creds", help="The auditor's (or the querying party's) credentials "
                                        "file.", exists=True, dir_okay=False)],
    item_id: Annotated[str | None, typer.Argument(help="With explain: a deadline or ledger entry id (or its "
                                                  "first characters).")] = None,
    server: Annotated[str | None, typer.Option(help="The NATS URL; default the credentials file's, else "
                                               "REINTEGRATION_NATS_URL.")] = None,
    at: Annotated[str | None, typer.Option("--time", help="With asof: a time, RFC 3339 with an offset.")] = None,
    day: Annotated[str | None, typer.Option("--date", help="With asof: up to the end of this Belgian day.")] = None,
    version: Annotated[int | None, typer.Option("--version", help="With asof: the first N events; with deadlines "
                                                "or benefits: the state at that version.")] = None,
    on: Annotated[str | None, typer.Option("--on", help="With applied: which facts had happened and were known "
                                           "by this day.")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="With dossier: write it here.")] = None,
    as_json: AsJson = False,
) -> None:
    """Ask the audit service (as an auditor) or a query subject one question about one case over NATS, with your
    own credentials: the same tables as `reintegration audit`, and one disclosure record naming you."""
    from .party_cli import ask_question

    raise typer.Exit(ask_question(creds, question, case_id, server=server, item_id=item_id, at=at, day=day,
                                  version=version, on=on, as_json=as_json, out_file=out_file))


@app.command("console")
def console_command(
    creds: Annotated[Path, typer.Option("--creds", help="The auditor's credentials file (auditor-<name>.creds).",
                                        exists=True, dir_okay=False)],
    server: Annotated[str | None, typer.Option(help="The NATS URL; default the credentials file's, else "
                                               "REINTEGRATION_NATS_URL.")] = None,
    host: Annotated[str, typer.Option(help="The address to listen on; the default keeps the console to this "
                                      "machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.", min=1, max=65535)] = 8080,
) -> None:
    """The auditor's console: a web page on this machine (http://127.0.0.1:8080) showing a case's history on its
    two time axes, its deadlines, ledger, integrity and disclosures, as of any moment. It asks the audit service
    over NATS with your credentials only: the server's permissions decide, and each answer is recorded."""
    from shared.infra.parties import load_credentials

    from .console.app import serve
    from .console.asking import AuditLink
    from .party_cli import server_of

    credentials = load_credentials(creds)
    url = server_of(server, credentials)
    console.print(f"the auditor's console of {credentials.party}, asking {url}: http://{host}:{port}/ (Ctrl-C stops)",
                  highlight=False, soft_wrap=True)
    serve(AuditLink(credentials, url), host=host, port=port)


@app.command()
def status(
    data_dir: DataDir = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    watch: Annotated[float | None, typer.Option(help="Show it again every this many seconds (Ctrl-C stops).",
                                                min=1)] = None,
) -> None:
    """One screen of a running system (the operator's identity): each service `up` supervises (up, restarts,
    ready), streams, every consumer's pending events and lag in seconds, dead letters, parked cases, timers, the
    stores' sizes and each service's last logged error. Exit code 1 when dead letters wait, a consumer is behind or
    a service is down or not ready."""
    import time as _time

    from .status import attention, gather, print_status, to_json

    settings = Settings.from_env(data_dir=data_dir)
    while True:
        view = asyncio.run(gather(settings))
        if as_json:
            print(to_json(view))
        code = attention(view) if as_json else print_status(view)
        if watch is None:
            raise typer.Exit(code)
        _time.sleep(watch)
        console.clear()


@app.command()
def simulate(
    file: Annotated[Path, typer.Argument(help="A case's reports, one JSON report per line.", exists=True)],
    as_json: AsJson = False,
    today: Annotated[str | None, typer.Option(help="The day of receipt (YYYY-MM-DD); default today.")] = None,
    enable_announced: Annotated[list[str] | None, typer.Option(
        "--enable-announced", metavar="RULE_ID", help="Also apply this announced, never-enacted sanction "
        "(repeatable), besides those the deployment enables (REINTEGRATION_ENABLED_ANNOUNCED).",
        show_default=False)] = None,
    roll_forward: Annotated[bool | None, typer.Option(
        "--roll-forward/--no-roll-forward", help="Override the deployment's REINTEGRATION_ROLL_FORWARD.",
        show_default=False)] = None,
    prior_premium: Annotated[bool, typer.Option(
        "--prior-premium", help="The employer already received the return-to-work premium for this worker in a "
        "case outside the file (one premium per worker and employer).")] = False,
) -> None:
    """What if: the deadlines and ledger the reports of one or more cases produce (each `incapacity_reported.v1`
    line opens a case; the lines after it belong to it), computed in memory without any server, under
    the deployment's settings (roll-forward, employer policies, enabled announced sanctions: the REINTEGRATION_*
    variables the services read), so that it agrees with what a deployed service records."""
    from .operate import announced_rule_ids
    from .operate import simulate as run

    known = announced_rule_ids()
    for rule_id in enable_announced or ():
        if rule_id not in known:
            raise typer.BadParameter(
                f"{rule_id!r} is not an announced rule of the rulebook; these are: {', '.join(sorted(known))}",
                param_hint="--enable-announced")
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        console.print(f"[red]the deployment's settings are not valid: {exc}[/]")
        raise typer.Exit(2) from None
    logs.configure("WARNING")
    raise typer.Exit(run(file, as_json, today, settings, enable_announced=tuple(enable_announced or ()),
                         roll_forward=roll_forward, prior_premium=prior_premium))


@app.command()
def relay(
    from_position: Annotated[
        int | None, typer.Option("--from", help="Replay from this store position once, then exit.")
    ] = None,
    to_position: Annotated[int | None, typer.Option("--to", help="Last position of the replay.")] = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Relay recorded Case events into the TRAJECTORY stream, exactly once and in order.

    With --from (and --to), republish that range of store positions once after an incident, with progress;
    JetStream drops what it still holds, consumers drop what they already applied. Ctrl-C stops a replay between
    two events and says where.
    """
    from services.intake.outbox import run_relay

    if to_position is not None and from_position is None:
        raise typer.BadParameter("--to needs --from: give the first position of the range to replay", param_hint="--to")
    if from_position is not None and from_position < 1:
        raise typer.BadParameter("store positions start at 1", param_hint="--from")
    if from_position is not None and to_position is not None and to_position < from_position:
        raise typer.BadParameter(f"--to {to_position} is before --from {from_position}", param_hint="--to")
    settings = Settings.from_env(data_dir=data_dir)
    logs.configure(json_lines=settings.log_format == "json")

    if from_position is None:
        async def follow() -> None:
            stop = asyncio.Event()
            _install_stop(asyncio.get_running_loop(), stop)
            await run_relay(settings, stop)

        asyncio.run(_observed("relay", settings, follow))
        return
    raise typer.Exit(_replay(settings, from_position, to_position))


def _replay(settings: Settings, from_position: int, to_position: int | None) -> int:
    """``relay --from``: republish a range with a progress bar; 1 when stopped before its end."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from services.intake.application import build_intake
    from services.intake.outbox import run_relay

    app = build_intake(settings)
    try:
        last = app.recorder.max_notification_id() or 0
    finally:
        app.close()
    end = min(last, to_position) if to_position is not None else last
    if end < from_position:
        console.print(f"nothing to replay: the store's last position is {last}")
        return 0
    reached = from_position - 1

    async def main() -> tuple[int, bool]:
        from .connect import connect_once

        nonlocal reached
        nc = await connect_once(settings, name="reintegration-relay-replay")
        stop = asyncio.Event()
        _install_stop(asyncio.get_running_loop(), stop)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task(f"replaying positions {from_position}-{end}", total=end - from_position + 1)

            def advance(position: int, _messages: int) -> None:
                nonlocal reached
                reached = position
                progress.update(task, completed=position - from_position + 1)

            published = await run_relay(settings, stop, from_position=from_position, to_position=end,
                                        on_replay_progress=advance, nc=nc)
            return published, stop.is_set()

    messages, stopped = asyncio.run(main())
    replayed = f"positions {from_position}-{reached}" if reached >= from_position else "no position"
    console.print(f"replayed {replayed}: {messages} messages published "
                  "(JetStream drops those it still holds in its duplicate window)")
    if stopped and reached < end:
        console.print(f"stopped before the end: run `reintegration relay --from {reached + 1} --to {end}` to finish")
        return 1
    return 0


@bench_app.command("intake")
def bench_intake(
    reports: Annotated[int, typer.Option(help="Reports to push through intake.")] = 5000,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 32,
    relay_events: Annotated[int, typer.Option(
        help="Events for the relay benchmark: the intake store is topped up with more cases to this many.")] = 20000,
    data_dir: Annotated[Path | None, typer.Option(help="Folder (default: a temporary one).")] = None,
    rate: Annotated[float, typer.Option(
        help="Then send about five seconds' worth of reports at this fixed rate (reports/s), and the echo as "
             "many: latency below saturation. 0: skip.", min=0)] = 200.0,
) -> None:
    """Intake reports/s and request-reply latency (at saturation and at a fixed rate), and relay events/s, each
    against a raw NATS baseline."""
    run_intake_bench = lab_module("bench.intake").run_intake_bench

    logs.configure("WARNING")
    run_intake_bench(reports=reports, concurrency=concurrency, relay_events=relay_events, data_dir=data_dir,
                     rate=rate)


@bench_app.command("derived")
def bench_derived(
    cases: Annotated[int, typer.Option(
        help="Cases whose events go through the deadlines and benefits services.")] = 2000,
    data_dir: Annotated[Path | None, typer.Option(help="Folder (default: a temporary one).")] = None,
) -> None:
    """Trajectory events/s through deadlines and benefits over a real nats-server (schedules written), against a
    raw JetStream consume-and-republish baseline in the same run; timers held and server memory."""
    run_derived_bench = lab_module("bench.derived").run_derived_bench

    logs.configure("WARNING")
    run_derived_bench(cases=cases, data_dir=data_dir)


@bench_app.command("timers")
def bench_timers(
    timers: Annotated[int, typer.Option(help="Open deadlines whose timers are armed (due over the next 2 years).")]
    = 100_000,
    fire: Annotated[int, typer.Option(help="Timers armed to fire 5 s ahead, to time how late they fire.")] = 1000,
    data_dir: Annotated[Path | None, typer.Option(help="Folder (default: a temporary one).")] = None,
) -> None:
    """How many deadline timers the server holds and its memory: N timers armed by the service's TimerWriter,
    against the same payloads as plain messages in the same run; and how late K timers fire."""
    run_timers_bench = lab_module("bench.timers").run_timers_bench

    logs.configure("WARNING")
    if timers < 1 or fire < 1:
        raise typer.BadParameter("give at least one timer", param_hint="--timers/--fire")
    run_timers_bench(timers=timers, fire=fire, data_dir=data_dir)


@bench_app.command("recompute")
def bench_recompute(
    cases: Annotated[int, typer.Option(help="Case histories to recompute.")] = 100_000,
    rebuild: Annotated[bool, typer.Option(help="Also rebuild both services' stores from an intake store.")] = True,
    data_dir: Annotated[Path | None, typer.Option(help="Folder (default: a temporary one).")] = None,
) -> None:
    """Deadlines and ledgers of N cases recomputed from scratch with the pure functions, and (with --rebuild) both
    services rebuilt from an intake store of N cases, each against reading the same events raw in the same run."""
    run_recompute_bench = lab_module("bench.derived").run_recompute_bench

    logs.configure("WARNING")
    run_recompute_bench(cases=cases, rebuild=rebuild, data_dir=data_dir)


@bench_app.command("audit")
def bench_audit(
    cases: Annotated[int, typer.Option(help="Cases for `audit verify` over all cases.")] = 100_000,
    events: Annotated[int, typer.Option(help="Events of the one long case replayed by the auditor.")] = 200,
    data_dir: Annotated[Path | None, typer.Option(help="Folder (default: a temporary one).")] = None,
) -> None:
    """Audit replay of one long case (ms, median) and `audit verify` over N cases (cases/s), each against reading
    the same events raw from the store in the same run."""
    run_audit_bench = lab_module("bench.audit").run_audit_bench

    logs.configure("WARNING")
    run_audit_bench(cases=cases, events=events, data_dir=data_dir)


@bench_app.command("telemetry")
def bench_telemetry(
    cases: Annotated[int, typer.Option(help="Generated cases a round.")] = 1000,
    rounds: Annotated[int, typer.Option(help="Rounds of each mode (off, metrics, traces, on).")] = 3,
    trace_sample: Annotated[float, typer.Option(
        help="The share of reports traced in the traced modes (REINTEGRATION_TRACE_SAMPLE).")] = 0.01,
    data_dir: Annotated[Path | None, typer.Option(help="Folder (default: a temporary one).")] = None,
) -> None:
    """The cost of metrics and traces: the e2e load with neither, with every process's /metrics scraped each
    second, with spans exported over OTLP, and with both, in rotating rounds; accepted reports/s and pipeline
    events/s per mode (medians) and the ratio to off."""
    run_telemetry_bench = lab_module("bench.telemetry").run_telemetry_bench

    logs.configure("WARNING")
    run_telemetry_bench(cases=cases, rounds=rounds, sample=trace_sample, data_dir=data_dir)


@bench_app.command("e2e")
def bench_e2e(
    cases: Annotated[int, typer.Option(help="Generated cases whose reports go through the whole system.")] = 5000,
    quick: Annotated[bool, typer.Option(help="A small run (for CI): a few hundred cases.")] = False,
    cluster: Annotated[bool, typer.Option(help="Run on a 3-node NATS cluster with R3 streams.")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="Folder (default: a temporary one).")] = None,
    rate: Annotated[float | None, typer.Option(
        help="Send at most this many reports per second (and the raw baseline as many messages): latency below "
             "saturation. Default: as fast as the cases in flight allow.")] = None,
) -> None:
    """Reports through intake, relay, deadlines and benefits over a real nats-server: reports/s, latency from report
    to deadline event (p50/p99), events/s per service, peak memory per process, against a raw JetStream 3-hop
    baseline in the same run; then the full rebuild of the projections against reading the raw store."""
    run_e2e_bench = lab_module("bench.e2e").run_e2e_bench

    logs.configure("WARNING")
    run_e2e_bench(cases=cases, quick=quick, cluster=cluster, data_dir=data_dir, rate=rate)


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
    """Generate the AsyncAPI document of the NATS contracts (FastStream, with msgspec's schemas), and beside it
    the contract's reference page, contracts.md (subjects per party, reports, rejection codes, the feed)."""
    from .contract_docs import render_asyncapi
    from .contracts_page import render_contracts

    stale = False
    for path, text in ((out, render_asyncapi()), (out.with_name("contracts.md"), render_contracts())):
        if check:
            if not path.exists() or path.read_text() != text:
                console.print(f"[red]{path} is out of date[/]: run `reintegration asyncapi`")
                stale = True
            else:
                console.print(f"{path} is up to date")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        console.print(f"wrote {path}")
    if stale:
        raise typer.Exit(1)
