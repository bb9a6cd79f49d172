"""The auditor: read-only questions over the intake, deadlines and benefits stores, and their tamper evidence.

One object, opened on the same settings as the services (so the same stores, cipher, rulebook, policy and
options), closed when done::

    with Auditor(Settings.from_env(data_dir=...)) as auditor:
        auditor.history(case_id)
        auditor.as_of(case_id, time=datetime(...)) / auditor.as_of(case_id, version=3)
        auditor.applied(case_id, on=date(...))
        auditor.explain(case_id, item_id)
        auditor.verify(case_id) / auditor.verify_all(progress)
        auditor.seal() / auditor.checkpoint()
        auditor.dossier(case_id) -> dict  (render_html(...) for the page)
        auditor.disclosures(case_id)  (who was told what about the case: the disclosure log's records)
        auditor.impact(Rulebook.from_path(path))

Only ``seal`` and ``checkpoint`` write, and only to ``<data dir>/audit.sqlite``. ``disclosures`` reads the
disclosure log it is given (the audit service's own), else opens it and closes it with the auditor.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from uuid import UUID

from services.disclosures.log import DisclosureLog, build_disclosures
from shared.infra.settings import Settings
from shared.rulebook import Rulebook

from . import chain, disclosed, dossier, explain, history, impact, verify
from .chain import AuditStore, Checkpoint, SealReport
from .disclosed import Disclosures
from .history import Applied, AsOf, HistoryEntry
from .impact import ImpactReport
from .rules import Rules
from .stores import Stores
from .verify import AuditReport, CaseVerdict


class Auditor:
    def __init__(self, settings: Settings, rulebook: Rulebook | None = None,
                 disclosures: DisclosureLog | None = None) -> None:
        self.settings = settings
        self.stores = Stores(settings)
        self.rules = Rules.from_settings(settings, rulebook)
        self._audit: AuditStore | None = None
        #: the disclosure log given (not closed here), or the one opened on first use (closed with the auditor)
        self._log, self._own_log = disclosures, False

    def __enter__(self) -> Auditor:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.stores.close()
        if self._audit is not None:
            self._audit.close()
        if self._own_log and self._log is not None:
            self._log.close()

    def _audit_store(self, writable: bool = False) -> AuditStore:
        if self._audit is None or (writable and not self._audit.writable):
            if self._audit is not None:
                self._audit.close()
            self._audit = AuditStore(Path(self.settings.data_dir), writable=writable)
        return self._audit

    # --- questions ---------------------------------------------------------------------------------------------

    def case_ids(self) -> list[UUID]:
        return self.stores.case_ids()

    def history(self, case_id: UUID) -> list[HistoryEntry]:
        return history.history(self.stores, case_id)

    def as_of(self, case_id: UUID, *, time: datetime | None = None, version: int | None = None) -> AsOf:
        return history.as_of(self.stores, self.rules, case_id, time=time, version=version)

    def applied(self, case_id: UUID, on: date | None = None) -> Applied:
        return history.applied(self.stores, self.rules, case_id, on)

    def explain(self, case_id: UUID, item_id: str) -> dict[str, Any]:
        return explain.explain(self.stores, self.rules, case_id, item_id)

    def disclosures(self, case_id: UUID) -> Disclosures:
        if self._log is None:
            self._log, self._own_log = build_disclosures(self.settings), True
        return disclosed.disclosures(self._log, case_id)

    # --- verification ----------------------------------------------------------------------------------------------

    def verify(self, case_id: UUID) -> CaseVerdict:
        return verify.verify_case(self.stores, self._audit_store(), self.rules, case_id)

    def verify_all(self, progress: Callable[[int, int], None] | None = None,
                   outside_digest: str | None = None) -> AuditReport:
        return verify.verify_all(self.stores, self._audit_store(), self.rules, progress, outside_digest)

    def seal(self, *, full: bool = False, now: datetime | None = None) -> SealReport:
        return chain.seal(self.stores, self._audit_store(writable=True), full=full, now=now)

    def checkpoint(self, *, now: datetime | None = None) -> tuple[SealReport, Checkpoint]:
        return chain.checkpoint(self.stores, self._audit_store(writable=True), now=now)

    # --- exports -----------------------------------------------------------------------------------------------

    def dossier(self, case_id: UUID, now: datetime | None = None) -> dict[str, Any]:
        return dossier.dossier(self.stores, self._audit_store(), self.rules, case_id, now)

    def impact(self, draft: Rulebook, name: str = "draft",
               progress: Callable[[int, int], None] | None = None) -> ImpactReport:
        return impact.impact(self.stores, self.rules, draft, name, progress)
