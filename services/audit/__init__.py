"""The auditor: history and time travel, explanations, verification against the pure functions, hash chains with
sealed links and checkpoints, dossiers and the impact of a draft rulebook. Read-only over the services' stores; run
by ``reintegration audit`` and by the audit service, which answers auditors' questions over NATS (``main.py``)."""

from .auditor import Auditor
from .chain import AuditStore, ChainBreak, ChainStatus, Checkpoint, SealReport, chain_link
from .dossier import render_html
from .stores import AuditError
from .verify import AuditReport, CaseVerdict, Difference

__all__ = [
    "AuditError",
    "AuditReport",
    "AuditStore",
    "Auditor",
    "CaseVerdict",
    "ChainBreak",
    "ChainStatus",
    "Checkpoint",
    "Difference",
    "SealReport",
    "chain_link",
    "render_html",
]
