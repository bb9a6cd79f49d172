"""`docs/contracts.md`: the contract as a reference page, generated from the code and the rulebook (`reintegration
asyncapi` writes it beside `docs/asyncapi.json`; a test fails when the committed page is stale).

Everything in the tables comes from the code: the parties' imports (:func:`shared.infra.parties.imports`), the
report types and who may send them, the rulebook's regimes, request rights and rules, the rejection codes, and the
plan-update steps. Only the sentences around them are written here.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from services.intake.decide import WORK_POTENTIAL_RULE
from shared.events import reports as r
from shared.events.replies import RETRYABLE, RejectionCode
from shared.infra.parties import Party, Role, imports
from shared.rulebook import default_rulebook
from shared.rulebook.benefits import BenefitRule, ResponsibilityContributionRule
from shared.rulebook.deadlines import DeadlineRule
from shared.rulebook.model import RequestRight
from shared.rulebook.plan_updates import STEPS

#: What each rejection code means for the sender.
MEANINGS: dict[RejectionCode, str] = {
    RejectionCode.TOO_LARGE: "the request is larger than intake reads",
    RejectionCode.MALFORMED: "not one JSON object of the report's shape",
    RejectionCode.UNKNOWN_TYPE: "no report has this `type`",
    RejectionCode.INVALID_FIELD: "a field is missing, of the wrong type or out of its range (the field is named)",
    RejectionCode.INVALID_IDENTIFIER: "a national or enterprise number fails its check, or is not in its compact form",
    RejectionCode.NOT_ALLOWED_FOR_PARTY: "this party does not send this report type (or not about this case)",
    RejectionCode.CASE_NOT_FOUND: "no case with this id for this party",
    RejectionCode.CASE_EXISTS: "the opening report names a case that is already open",
    RejectionCode.REPORT_ID_REUSED: "this report id was used by this sender for another report (case and version "
                                    "named)",
    RejectionCode.NOT_ELIGIBLE: "a rule refuses it (the rule and regime are named)",
    RejectionCode.INVALID_STATE: "the case is not in a state that allows it (e.g. no trajectory running)",
    RejectionCode.INVALID_DATE: "a date contradicts what the case records, or lies outside what the rules cover",
    RejectionCode.NO_REGIME: "no regime in force on that date has the rule the report needs",
    RejectionCode.CASE_CLOSED: "the case is closed",
    RejectionCode.CONFLICT: "another report of the case was recorded at the same moment",
    RejectionCode.STORE_UNAVAILABLE: "the store could not record it in time",
    RejectionCode.INTERNAL_ERROR: "intake failed on it (its log says why)",
}

_ROLES = [(Role.HEALTH_FUND, "<code>"), (Role.OCCUPATIONAL_HEALTH_SERVICE, "<enterprise number>"),
          (Role.EMPLOYER, "<enterprise number>"), (Role.AUDITOR, "<name>")]
_KIND_NAMES = {"health_fund": "health fund", "occupational_health_service": "occupational health service",
               "employer": "employer"}


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _subjects() -> list[str]:
    out = ["## Subjects each party uses", "",
           "The server pins every subject to its party's account (`docs/parties.md`). `<...>` is the party's own id.",
           "", _row("party", "kind", "subject"), _row("---", "---", "---")]
    for role, placeholder in _ROLES:
        party = Party(role=role, id="ID")
        for item in imports(party):
            subject = (item.to or item.subject).replace("ID", placeholder)
            if "CONSUMER" in subject or subject.startswith("$JS"):
                continue  # the JetStream API and acknowledgement subjects of the feed consumers: one row below
            kind = "request-reply" if item.kind == "service" else "subscribe (live feed)"
            out.append(_row(role.value.replace("_", " "), kind, f"`{subject}`"))
        if role is Role.EMPLOYER:
            out.append(_row("employer", "JetStream pull", "its consumers `employer-<enterprise number>` and "
                            "`employer-<enterprise number>-replay` on DEADLINES and BENEFITS, through the API prefix "
                            "of its profile (`js_api_prefix`)"))
    return out


def _reports() -> list[str]:
    rulebook = default_rulebook()
    regimes = rulebook.regimes
    work_potential = [g.id for g in regimes if rulebook.has_rule(g.id, WORK_POTENTIAL_RULE)]
    out = ["## Reports", "",
           "Each report is one JSON object tagged by `type`, sent on the sender's own intake subject. Its effective "
           "date (the field named below) chooses the regime whose rules apply: "
           + ", ".join(f"{g.id} from {g.valid_from.isoformat()}" for g in regimes) + ".", "",
           _row("type", "sent by", "effective date", "regimes that accept it"), _row("---", "---", "---", "---")]
    for cls in r.REPORT_TYPES:
        senders = ", ".join(sorted(_KIND_NAMES[k.value] for k in cls.reporters))
        if cls is r.WorkPotentialEstimated:
            which = ", ".join(work_potential) + f" only (the rule `{WORK_POTENTIAL_RULE}`)"
        elif cls is r.AssessmentIssued:
            which = "; ".join(f"{g.id}: codes {', '.join(g.decision_codes)}" for g in regimes if g.decision_codes)
        else:
            which = "every regime"
        out.append(_row(f"`{r.tag_of(cls)}`", senders, f"`{cls.effective_field}`", which))
    out += ["", "### Who may request a trajectory, by regime", "",
            "A regime that inherits another (BE-2026 inherits BE-2022) keeps every rule it does not restate.", "",
            _row("regime", "initiator", "allowed", "from", "earlier with"), _row("---", "---", "---", "---", "---")]
    for rule in rulebook.rules(RequestRight):
        assert isinstance(rule, RequestRight)
        earlier = [what for what, given in (("a certificate of definitive unfitness", rule.certificate_exempts),
                                            ("the worker's consent", rule.consent_exempts),
                                            ("an estimate that found work potential", rule.estimate_exempts))
                   if given]
        out.append(_row(rule.regime, rule.initiator.replace("_", " "), "yes" if rule.allowed else "no",
                        "-" if not rule.allowed else f"{rule.min_months} months of incapacity" if rule.min_months
                        else "day 1",
                        ", ".join(earlier) or "-"))
    return out


def _rejections() -> list[str]:
    out = ["## Rejection codes", "",
           "A rejection (`rejected.v1`) names its code, and where one field is at fault its JSON path, the rule and "
           "the regime. `retry: true` comes only with the codes marked retryable: send the same report again, "
           "unchanged and with the same report id; a report answered with any other code will be refused again.",
           "", _row("code", "retryable", "meaning"), _row("---", "---", "---")]
    for code in RejectionCode:
        out.append(_row(f"`{code.value}`", "yes" if code in RETRYABLE else "no", MEANINGS[code]))
    return out


def _feed() -> list[str]:
    rulebook = default_rulebook()
    out = ["## What reaches an employer's feed, and from which reports", "",
           "Headers of every feed message: `Nats-Msg-Id` is the message's id (deduplicate on it: a redelivery or a "
           "replay carries the same id); `Reintegration-Position` is the intake store position of the Case event "
           "behind it; `Reintegration-Part` is `i/n` within one recorded step; `Nats-Expected-Last-Sequence` is the "
           "publisher's own precondition (ignore it). Messages of one case come in the "
           "order its reports were recorded (every feed message carries `case_version`); the stream sequence "
           "orders the messages of one stream.", "",
           "### Plan updates (`feed.trajectory.v1`, `reintegration.employer.<enterprise number>.trajectory.<case id>`)",
           "", _row("report", "step"), _row("---", "---")]
    for cls, step in STEPS.items():
        out.append(_row(f"`{r.tag_of(cls)}`", step))
    out += ["", "### Deadlines (`feed.deadline.v1`, `reintegration.employer.<enterprise number>.deadlines.<case id>`)",
            "", "A deadline that concerns the employer is published when it opens, is met, cancelled or recomputed, "
            "and when its timer fires (missed, expired, reached). A regime keeps the rules it inherits; a report that "
            "starts a rule only under conditions (e.g. 20 workers or more) has them in the rulebook.", "",
            _row("rule", "regimes", "opened by", "met by", "cancelled by"), _row("---", "---", "---", "---", "---")]
    rules: dict[str, list[DeadlineRule]] = defaultdict(list)
    for rule in rulebook.rules(DeadlineRule):
        if isinstance(rule, DeadlineRule) and rule.concerns_employer and rule.applies_when is None:
            rules[rule.id].append(rule)
    for rule_id, versions in rules.items():
        first = versions[-1]

        def tags(matches: list[Any]) -> str:
            return ", ".join(sorted({f"`{m.report}`" for m in matches})) or "-"

        out.append(_row(f"`{rule_id}`", ", ".join(v.regime for v in versions), tags(first.starts_on),
                        tags(first.met_by), tags(first.cancelled_by)))
    out += ["", "### Ledger entries (`feed.benefit.v1`, `reintegration.employer.<enterprise number>.benefits.<case "
            "id>`)", "", "An entry in which the employer pays or receives, computed from the case's history by the "
            "rule named; a reversal follows the entry it corrects. (The responsibility contribution is computed per "
            "employer and quarter by `reintegration benefits contribution`, not per case.)", "",
            _row("rule", "regimes", "payer", "beneficiary"), _row("---", "---", "---", "---")]
    entries: dict[str, list[BenefitRule]] = defaultdict(list)
    for benefit in rulebook.rules(BenefitRule):
        if (isinstance(benefit, BenefitRule) and not isinstance(benefit, ResponsibilityContributionRule)
                and "employer" in (benefit.payer.value, benefit.beneficiary.value)):
            entries[benefit.id].append(benefit)
    for rule_id, kept in entries.items():
        announced = " (status A: only where the deployment enables it)" if kept[0].status.value == "A" else ""
        out.append(_row(f"`{rule_id}`{announced}", ", ".join(sorted({v.regime for v in kept})),
                        kept[0].payer.value.replace("_", " "), kept[0].beneficiary.value.replace("_", " ")))
    return out


def render_contracts() -> str:
    """The whole page."""
    lines = ["# The contract, for any NATS client", "",
             "Generated by `reintegration asyncapi` from the code and the rulebook "
             f"({default_rulebook().label}); do not edit. The payload schemas are in `docs/asyncapi.json`, "
             "credentials and permissions in `docs/parties.md`.", ""]
    for part in (_subjects(), _reports(), _rejections(), _feed()):
        lines += [*part, ""]
    return "\n".join(lines).rstrip() + "\n"
