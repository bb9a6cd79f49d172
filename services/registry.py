"""The one list of services: name -> the command that runs it and its composition root.

``reintegration serve``, ``up`` (and its cluster shape), the dead-letter commands, the parties' permissions and the
lab's fault scenarios all read this list, so adding a service is one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    #: What it does, in one line (``serve --help``).
    summary: str
    #: The CLI command that runs it as a process: ``python -m reintegration <args>``.
    args: tuple[str, ...]
    #: ``module:function`` of its composition root (``build_app(settings, clock=...)``).
    root: str
    #: A derived service: consumes TRAJECTORY (partitioned across replicas), dead-letters what it cannot apply.
    derived: bool = False
    #: ``module:function`` that opens its application on its store (derived services: rebuild, dead letters).
    application: str | None = None

    def load(self, target: str | None = None) -> Any:
        module, _, name = (target or self.root).partition(":")
        return getattr(importlib.import_module(module), name)


SERVICES: tuple[ServiceEntry, ...] = (
    ServiceEntry("intake", "Run the intake service (request-reply on reintegration.intake.>).",
                 ("serve", "intake"), "services.intake.main:build_app"),
    ServiceEntry("relay", "Relay recorded Case events into the TRAJECTORY stream, exactly once and in order.",
                 ("relay",), "services.intake.outbox:run_relay"),
    ServiceEntry("deadlines", "Run the deadlines service: trajectory consumer, timers, outbox relay and query "
                 "subject.", ("serve", "deadlines"), "services.deadlines.main:build_app", derived=True,
                 application="services.deadlines.application:build_deadlines"),
    ServiceEntry("benefits", "Run the benefits service: trajectory consumer, outbox relay and query subject.",
                 ("serve", "benefits"), "services.benefits.main:build_app", derived=True,
                 application="services.benefits.application:build_benefits"),
    ServiceEntry("disclosures", "Run the disclosures service: records every message delivered to an employer's "
                 "feed.", ("serve", "disclosures"), "services.disclosures.main:build_app"),
    ServiceEntry("feeds", "Run the feeds service: opens employers' pull consumers on their own feed "
                 "(reintegration.feed.<enterprise>).", ("serve", "feeds"), "services.feeds.main:build_app"),
    ServiceEntry("audit", "Run the audit service: the auditors' read-only request subjects "
                 "(reintegration.audit.>).", ("serve", "audit"), "services.audit.main:build_app"),
)

BY_NAME: dict[str, ServiceEntry] = {entry.name: entry for entry in SERVICES}
#: The derived services, in start order: they consume TRAJECTORY and dead-letter.
DERIVED: tuple[str, ...] = tuple(entry.name for entry in SERVICES if entry.derived)


def service(name: str) -> ServiceEntry:
    """The entry of ``name``; ``KeyError`` naming the known services otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown service {name!r}; known: {', '.join(BY_NAME)}") from None
