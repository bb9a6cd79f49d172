"""S2 medical data to employers: every message on the employer subjects (``reintegration.employer.>``) is read back
from the DEADLINES and BENEFITS streams, and every employer replays its own feed with its own credentials (what it is
delivered): 0 canaries may appear in a subject, a header or a payload, and each employer must receive exactly the
messages on its subjects. The intake store must show that the canaries were recorded in every restricted field of
every report type that has one (coverage: a type never exercised fails the scenario). Then the schema check: no feed
type (``FEED_TYPES``) has a medical or free-text field, by the type information and by the JSON schema, and no
restricted field name of any report type is a field of a feed type."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from lab.chaos.canaries import (
    CANARY_PREFIX,
    FEED_STREAMS,
    Fed,
    canaries_in,
    canary_scripts,
    employer_messages,
    feed_scripts,
    restricted_report_types,
    restricted_values,
    running_system,
    settle,
)
from lab.chaos.report import Row, scenario
from shared.events import reports as r
from shared.events.common import FREE_TEXT_KEY, MEDICAL_KEY, restricted_fields
from shared.events.feed import FEED_TYPES, AnyFeedMessage
from shared.infra.settings import Settings

S2_CASES, S2_QUICK_CASES = 10_000, 250


# --- the schema check ---------------------------------------------------------------------------------------------


def schema_markers(schema: Any, path: str = "$") -> list[str]:
    """Paths in a JSON schema where a field is marked medical or free text."""
    out: list[str] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in (MEDICAL_KEY, FREE_TEXT_KEY) and value:
                out.append(f"{path}.{key}")
            else:
                out += schema_markers(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            out += schema_markers(value, f"{path}[{index}]")
    return out


def restricted_leaf_names(cls: type[msgspec.Struct]) -> set[str]:
    """Names of the medical or free-text fields of ``cls`` and of the structs nested in it."""
    out: set[str] = set()

    def walk(t: Any) -> None:
        if isinstance(t, msgspec.inspect.StructType):
            restricted = restricted_fields(t.cls)
            for f in t.fields:
                if f.name in restricted:
                    before = len(out)
                    walk(f.type)
                    if len(out) == before:
                        out.add(f.name)  # a leaf: the marked string itself
        elif isinstance(t, msgspec.inspect.Metadata):
            walk(t.type)
        elif isinstance(t, msgspec.inspect.UnionType):
            for member in t.types:
                walk(member)
        elif isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.TupleType, msgspec.inspect.FrozenSetType)):
            walk(t.item_type)

    walk(msgspec.inspect.type_info(cls))
    return out


def feed_field_names() -> set[str]:
    names: set[str] = set()
    for cls in FEED_TYPES:
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        names |= {f.name for f in info.fields}
    return names


@dataclass
class SchemaCheck:
    feed_types: int
    #: restricted fields of a feed type by the type information (must be none)
    feed_restricted: dict[str, list[str]]
    #: medical / free-text markers anywhere in the feed messages' JSON schema (must be none)
    feed_markers: list[str]
    #: report types whose schema holds markers, and the report types with restricted fields (must agree)
    report_types_marked: list[str]
    report_types_restricted: list[str]
    #: per report type: its restricted field names that are also feed fields (must be none)
    shared_names: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        return (not any(self.feed_restricted.values()) and not self.feed_markers
                and self.report_types_marked == self.report_types_restricted and bool(self.report_types_marked)
                and not any(self.shared_names.values()))


def schema_check() -> SchemaCheck:
    feed_names = feed_field_names()
    return SchemaCheck(
        feed_types=len(FEED_TYPES),
        feed_restricted={cls.__name__: sorted(restricted_fields(cls)) for cls in FEED_TYPES},
        feed_markers=schema_markers(msgspec.json.schema(AnyFeedMessage)),
        report_types_marked=sorted(r.tag_of(cls) for cls in r.REPORT_TYPES if schema_markers(msgspec.json.schema(cls))),
        report_types_restricted=sorted(r.tag_of(cls) for cls in restricted_report_types()),
        shared_names={r.tag_of(cls): sorted(restricted_leaf_names(cls) & feed_names) for cls in r.REPORT_TYPES},
    )



async def employer_replays(settings: Settings, credentials: dict[str, Path], expected: Counter[str]
                           ) -> tuple[dict[str, list[Any]], list[str]]:
    """Each employer with credentials replays its own feed in both streams, as itself, until it holds what the
    streams hold for it and its consumer has nothing pending. (messages by employer, employers without
    credentials)."""
    import nats.errors

    from shared.infra.parties import connect_as, open_feed

    received: dict[str, list[Any]] = {}
    missing = sorted(e for e in expected if f"employer:{e}" not in credentials)
    for enterprise in sorted(e for e in expected if f"employer:{e}" in credentials):
        nc = await connect_as(credentials[f"employer:{enterprise}"], settings.nats_url)
        got: list[Any] = []
        try:
            for stream in FEED_STREAMS:
                sub = await open_feed(nc, enterprise, stream, consumer="replay", reset=True)
                while (await sub.consumer_info()).num_pending:
                    try:
                        batch = await sub.fetch(200, timeout=5)
                    except (TimeoutError, nats.errors.TimeoutError):
                        break  # pending yet nothing came: counted as lost below
                    for msg in batch:
                        got.append(msg)
                        await msg.ack()
        finally:
            await nc.close()
        received[enterprise] = got
    return received, missing


def intake_coverage(settings: Settings) -> tuple[Counter[str], int, int]:
    """From the intake store: accepted events per restricted report type whose every restricted field holds a
    canary; canary fields recorded; restricted fields recorded without one."""
    from reintegration.operate import intake_log

    covered: Counter[str] = Counter()
    planted = unplanted = 0
    for _position, event in intake_log(settings):
        values = restricted_values(event.report)
        if not values:
            continue
        good = [v for v in values if isinstance(v, str) and v.startswith(CANARY_PREFIX)]
        planted += len(good)
        unplanted += len(values) - len(good)
        if len(good) == len(values):
            covered[r.tag_of(event.report)] += 1
    return covered, planted, unplanted


# --- S2 -----------------------------------------------------------------------------------------------------------


@scenario("S2", "medical data to employers")
def medical_data_to_employers(workdir: Path, quick: bool) -> Row:
    cases = S2_QUICK_CASES if quick else S2_CASES
    started = time.monotonic()
    fed = Fed()
    schema = schema_check()
    with running_system(workdir) as runtime:
        feed_scripts(runtime, canary_scripts(cases), fed)
        settled = settle(runtime, timeout=120 + cases * 0.1)
        messages = asyncio.run(employer_messages(runtime.settings))
        expected = Counter(m.enterprise for m in messages)
        replays, no_credentials = asyncio.run(employer_replays(runtime.settings, runtime.credentials, expected))
        covered, planted, unplanted = intake_coverage(runtime.settings)
    leaked = [m for m in messages if canaries_in(m.data) or canaries_in(m.subject) or canaries_in(m.headers)]
    delivered = [msg for got in replays.values() for msg in got]
    leaked_delivered = [m for m in delivered if canaries_in(m.data) or canaries_in(m.subject)
                        or canaries_in(m.headers or {})]
    undecodable = 0
    for m in messages:
        try:
            msgspec.json.decode(m.data, type=AnyFeedMessage)
        except msgspec.MsgspecError:
            undecodable += 1
    lost = doubled = foreign = 0
    for enterprise, got in replays.items():
        ids = Counter((m.headers or {}).get("Nats-Msg-Id") or f"{m.subject}:{m.metadata.sequence.stream}" for m in got)
        want = {m.msg_id for m in messages if m.enterprise == enterprise}
        lost += len(want - set(ids))
        doubled += sum(n - 1 for n in ids.values() if n > 1)
        foreign += sum(1 for m in got if m.subject.split(".")[2] != enterprise)
    needed = {r.tag_of(cls) for cls in restricted_report_types()}
    uncovered = sorted(needed - set(covered))
    passed = (settled and not leaked and not leaked_delivered and not uncovered and not unplanted and not undecodable
              and not lost and not doubled and not foreign and not no_credentials and bool(messages)
              and schema.ok and not fed.surprises)
    detail = (
        f"{cases:,} cases, {fed.reports:,} reports ({fed.accepted:,} accepted), {planted:,} canary fields recorded "
        f"in {len(covered)}/{len(needed)} report types with medical or free-text fields"
        f"{' (never exercised: ' + ', '.join(uncovered) + ')' if uncovered else ''}; {len(messages):,} messages on "
        f"employer subjects, {len(delivered):,} replayed by {len(replays)} employers with their own credentials: "
        f"{len(leaked) + len(leaked_delivered)} canaries; feed schema: {schema.feed_types} types, "
        f"{len(schema.feed_markers)} medical/free-text markers, "
        f"{sum(len(v) for v in schema.shared_names.values())} report restricted field names in the feed"
        f"{'' if settled else '; NOT SETTLED in time'}"
        f"{'' if not fed.surprises else f'; {len(fed.surprises)} surprising replies'}"
        f"{'; employers without credentials: ' + ', '.join(no_credentials) if no_credentials else ''}"
        f"; {time.monotonic() - started:.0f} s"
    )
    return Row(
        id="S2", title="medical data to employers", faults=planted, sent=fed.reports, lost=lost, doubled=doubled,
        recover_s=None, pass_figure="0 canaries delivered; 0 medical fields in the feed schema", passed=passed,
        detail=detail,
        extra={"cases": cases, "canary_fields": planted, "covered": dict(covered), "needed": sorted(needed),
               "uncovered": uncovered, "unplanted": unplanted, "employer_messages": len(messages),
               "delivered": len(delivered), "employers": len(replays), "leaked": len(leaked),
               "leaked_delivered": len(leaked_delivered), "undecodable": undecodable, "foreign": foreign,
               "no_credentials": no_credentials, "settled": settled, "surprises": fed.surprises[:10],
               "schema_ok": schema.ok, "feed_markers": schema.feed_markers,
               "feed_restricted": schema.feed_restricted, "shared_names": schema.shared_names,
               "report_types_marked": schema.report_types_marked},
    )


