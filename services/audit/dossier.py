"""A case's dossier for an inspector: JSON (round-trips: only JSON types, events decodable as ``CaseEvent``) and
one self-contained HTML page (every value escaped, no script, no external asset, a CSP that forbids loading any, a
print style sheet).
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from services.benefits.ledger import LedgerStep, project_ledger
from services.deadlines.schedule import project_schedule
from services.intake.case import project_case
from shared.infra.clock import system_clock

from .chain import AuditStore
from .explain import explain_deadline, explain_entry
from .history import entry_of
from .rules import Rules
from .stores import Stores
from .verify import plain, verify_case

FORMAT = "reintegration.audit.dossier.v1"


def dossier(stores: Stores, audit: AuditStore, rules: Rules, case_id: UUID, now: datetime | None = None
            ) -> dict[str, Any]:
    events = stores.case_history(case_id)
    by_id = {e.event_id: e for e in events}
    verdict = verify_case(stores, audit, rules, case_id)
    diffs_of: dict[str | None, list[Any]] = {}
    for d in verdict.differences:
        diffs_of.setdefault(d.item, []).append(d)
    schedule = project_schedule(None, stores.derived_events("deadlines", case_id))
    if schedule is not None:
        deadlines = [explain_deadline(rules, d, by_id, True, schedule.outcomes.get(d.id), diffs_of.get(str(d.id), []))
                     for d in sorted(schedule.deadlines.values(), key=lambda d: (d.due_on, d.rule))]
    else:
        deadlines = [explain_deadline(rules, d, by_id, False, None, []) for d in rules.deadlines(events)]
    steps = [e for e in stores.derived_events("benefits", case_id) if isinstance(e, LedgerStep)]
    ledger = project_ledger(None, steps)
    step_of = {x.id: s for s in steps for x in s.entries}
    entries = list(ledger.entries) if ledger else rules.ledger(events)
    ledger_rows = [explain_entry(x, entries, by_id, step_of.get(x.id), ledger is not None, diffs_of.get(str(x.id), []))
                   for x in entries]
    out = {
        "format": FORMAT,
        "generated_at": (now or system_clock()).isoformat(),
        "case_id": str(case_id),
        "rulebook": rules.rulebook.version,
        "case": plain(project_case(None, events)),
        "history": plain([entry_of(e) for e in events]),
        "events": plain(events),
        "deadlines": deadlines,
        "ledger": ledger_rows,
        "verification": plain(verdict),
    }
    return json.loads(json.dumps(out))  # exactly what the file will hold


def to_json(d: dict[str, Any]) -> str:
    return json.dumps(d, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def events_of(d: dict[str, Any]) -> list[Any]:
    """The recorded events inside a dossier, decoded back into ``CaseEvent``s."""
    from shared.events.envelope import CaseEvent

    return msgspec.convert(d["events"], type=list[CaseEvent])


# --- HTML --------------------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5em 0}td,th{border:1px solid #ddd;padding:4px 6px;vertical-align:top;
text-align:left}th{background:#f4f4f4}.ok{color:#176b1c;font-weight:bold}.bad{color:#a61b1b;font-weight:bold}
.warn{color:#8a5a00;font-weight:bold}small,.muted{color:#666}code{font-size:.92em}ul{margin:.2em 0}
@media print{body{font-size:9pt;margin:0;max-width:none;color:#000}h2{break-after:avoid}tr,li{break-inside:avoid}
thead{display:table-header-group}th{background:none}.ok,.bad,.warn{color:#000}}
"""


def _e(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    return html.escape(str(value), quote=True)


def _kv(d: dict[str, Any]) -> str:
    return "<br>".join(f"<b>{_e(k)}</b>: {_e(v)}" for k, v in d.items() if v not in (None, "", [], {}))


def _table(head: list[str], rows: list[list[str]]) -> str:
    """``rows`` hold HTML already escaped cell by cell."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _causes(causes: list[dict[str, Any]]) -> str:
    return "<br>".join(
        f"{_e(c['role'])}: {_e(c['type'])} v{_e(c['version'])} effective {_e(c['effective_date'])}, reported by "
        f"{_e(c['reported_by'])} at {_e(c['recorded_at'])}" for c in causes
    )


def _status(verdict: dict[str, Any]) -> str:
    css = {"verified": "ok", "behind": "warn"}.get(verdict["status"], "bad")  # parked, different, broken: bad
    return f'<span class="{css}">{_e(verdict["status"])}</span>'


def render_html(d: dict[str, Any]) -> str:
    v = d["verification"]
    timeline = _table(
        ["v", "received (UTC)", "effective", "report", "reported by", "regime", "details"],
        [[_e(h["version"]), _e(h["recorded_at"]),
          f"{_e(h['effective_date'])}<br><small>{_e(h['effective_field'])}</small>",
          _e(h["type"]), _e(h["reported_by"]), _e(h["regime"]),
          _kv({k: val for k, val in h["report"].items() if k not in ("type", "report_id", "case_id")})]
         for h in d["history"]],
    )
    deadlines = _table(
        ["due", "rule", "regime", "party", "state", "legal basis", "explanation", "caused by", "verified"],
        [[_e(x["inputs"]["due_on"]), _e(x["rule"]), _e(x["regime"]), _e(x["party"]),
          _e(x["state"] + (f" ({x['outcome']['outcome']})" if x["outcome"] else "") + (" (late)" if x["late"] else "")),
          _e(x["legal_basis"]), _e(x["explanation"]), _causes(x["caused_by"]),
          _e("yes" if x["verified"] else "no")] for x in d["deadlines"]],
    )
    ledger = _table(
        ["period", "kind", "to / from", "figure", "rule", "regime", "in force", "explanation", "caused by",
         "verified"],
        [[_e(f"{x['inputs']['period_start']} .. {x['inputs']['period_end'] or ''}"), _e(x["kind"]),
          _e(f"{x['beneficiary']} / {x['payer']}"),
          _e(f"{x['inputs']['amount']} EUR" if x["inputs"]["amount"] is not None
             else f"{x['inputs']['percentage']} % of {x['inputs']['base']}" if x["inputs"]["percentage"] else ""),
          _e(x["rule"]), _e(x["regime"]), _e("yes" if x["in_force"] else "no"), _e(x["explanation"]),
          _causes(x["caused_by"]), _e("yes" if x["verified"] else "no")] for x in d["ledger"]],
    )
    differences = "".join(f"<li>{_e(x['store'])} {_e(x.get('item'))}: {_e(x['message'])}</li>"
                          for x in v["differences"]) or "<li>none</li>"
    chains = _table(
        ["store", "sealed up to", "stored up to", "unsealed", "first broken link"],
        [[_e(c["store"]), _e(c["sealed_version"]), _e(c["stored_version"]), _e(c["unsealed"]),
          f'<span class="bad">{_e(c["broken"]["message"])}</span>' if c.get("broken")
          else '<span class="ok">intact</span>']
         for c in v["chains"]],
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in v["notes"])
    case = d["case"] or {}
    state = _kv({k: case.get(k) for k in ("insz", "enterprise_number", "health_fund", "occupational_health_service",
                                           "cause", "created_at", "modified_at", "terminated_on", "closed_on")})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Dossier {_e(d["case_id"])}</title><style>{_CSS}</style></head><body><main>
<h1>Dossier of case <code>{_e(d["case_id"])}</code></h1>
<p class="muted">Generated {_e(d["generated_at"])} from the intake, deadlines and benefits stores;
rulebook {_e(d["rulebook"])}; format {_e(d["format"])}.</p>
<h2>Verification: {_status(v)}</h2>
<p>{_e(v["intake_version"])} recorded events; deadlines applied {_e(v["deadlines_applied"])}, benefits applied
{_e(v["benefits_applied"])}.</p><ul>{notes}</ul>
<h3>Differences between the recorded and the recomputed</h3><ul>{differences}</ul>
<h3>Hash chains</h3>{chains}
<h2>The case</h2><p>{state}</p>
<h2>Timeline: who reported what, when, under which regime</h2>{timeline}
<h2>Deadlines</h2>{deadlines}
<h2>Ledger</h2>{ledger}
</main></body></html>
"""
