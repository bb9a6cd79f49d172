"""F2 identifier typos: every single-digit change and adjacent swap of generated national and enterprise
numbers, the project's verdict (intake's decoder and rules) against python-stdnum's."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgspec

from lab.chaos.report import Row, scenario
from lab.chaos.system import (
    EMPLOYER,
    FUND,
    OHS,
    PARTIES,
    TODAY,
    national_number,
)
from shared.events.common import PartyKind


def variants(number: str) -> Iterator[tuple[str, str]]:
    """(``single``|``swap``, variant): every single-digit change and every adjacent swap that changes the number."""
    for at, digit in enumerate(number):
        for other in "0123456789":
            if other != digit:
                yield "single", number[:at] + other + number[at + 1:]
    for at in range(len(number) - 1):
        if number[at] != number[at + 1]:
            yield "swap", number[:at] + number[at + 1] + number[at] + number[at + 2:]


@scenario("F2", "identifier typos")
def identifier_typos(workdir: Path, quick: bool) -> Row:
    from stdnum.be import bis, nn, vat

    from lab.generator import enterprise_number
    from services.intake.decide import Rejection, decide
    from shared.events.codec import ContractError, decode_report
    from shared.rulebook import default_rulebook

    per_kind = 100 if quick else 5_000
    rng = random.Random(97)
    rulebook = default_rulebook()
    fund = PARTIES[PartyKind.HEALTH_FUND]
    template = {"type": "incapacity_reported.v1", "report_id": str(uuid.uuid4()), "insz": "85073003328",
                "enterprise_number": EMPLOYER, "staff_count": 120, "health_fund": FUND,
                "occupational_health_service": OHS, "start_date": "2024-01-10", "cause": "illness"}
    stdnum_ok = {"insz": lambda n: nn.is_valid(n) or bis.is_valid(n), "enterprise_number": vat.is_valid}

    def project_ok(name: str, value: str) -> tuple[bool, str | None]:
        """The intake's verdict: the strict decoder, then the rules for a new case (as a health fund reports it)."""
        try:
            report = decode_report(msgspec.json.encode({**template, name: value}))
            decide(None, report, fund, TODAY, rulebook)
        except Rejection as exc:
            return False, f"{exc.code.value} {exc.field}"
        except ContractError as exc:
            return False, f"{exc.code.value} {exc.field}"
        return True, None

    started = time.perf_counter()
    counts: Counter[tuple[str, str, str]] = Counter()  # (field, single|swap, rejected|accepted)
    disagreements: list[str] = []
    wrong_reason: list[str] = []
    numbers = {"insz": [national_number(rng) for _ in range(per_kind)],
               "enterprise_number": [enterprise_number(rng) for _ in range(per_kind)]}
    originals_refused = [f"{k} {n}" for k, ns in numbers.items() for n in ns if not project_ok(k, n)[0]
                         or not stdnum_ok[k](n)]
    for name, generated in numbers.items():
        for number in generated:
            for kind, variant in variants(number):
                ours, reason = project_ok(name, variant)
                theirs = stdnum_ok[name](variant)
                if ours != theirs:
                    disagreements.append(f"{name} {number} -> {variant} ({kind}): project {ours}, stdnum {theirs}")
                if not ours and reason != f"invalid_identifier $.{name}":
                    wrong_reason.append(f"{name} {variant}: {reason}")
                counts[(name, kind, "accepted" if ours else "rejected")] += 1
    elapsed = time.perf_counter() - started
    total = sum(counts.values())

    def rate(kind: str, name: str | None = None) -> tuple[int, int]:
        names = [name] if name else list(numbers)
        rejected = sum(counts[(n, kind, "rejected")] for n in names)
        return rejected, rejected + sum(counts[(n, kind, "accepted")] for n in names)

    swaps, singles = rate("swap"), rate("single")
    pct = lambda x: 100 * x[0] / x[1] if x[1] else 0.0  # noqa: E731
    agreement = 100 * (total - len(disagreements)) / total
    # An adjacent swap of a national number can give another valid number (the 19xx and 20xx checks, a BIS month):
    # no check digit can refuse it, and stdnum accepts it too. Enterprise-number swaps are all refused.
    enterprise_swaps = rate("swap", "enterprise_number")
    passed = (not disagreements and not originals_refused and enterprise_swaps[0] == enterprise_swaps[1]
              and pct(singles) >= 99.8 and not wrong_reason)
    per_field = "; ".join(
        f"{n}: swaps {pct(rate('swap', n)):.3f}% ({rate('swap', n)[0]:,}/{rate('swap', n)[1]:,}), single digits "
        f"{pct(rate('single', n)):.3f}% ({rate('single', n)[0]:,}/{rate('single', n)[1]:,})" for n in numbers)
    detail = (f"{per_kind:,} national (10% BIS) + {per_kind:,} enterprise numbers, {total:,} typos through the "
              f"intake decoder and rules in {elapsed:.0f} s: agreement with python-stdnum {agreement:.4f}% "
              f"({len(disagreements)} disagreements); swaps rejected {pct(swaps):.3f}%, single-digit changes "
              f"rejected {pct(singles):.3f}% ({singles[1] - singles[0]:,} pass every check: they are other valid "
              f"numbers); {per_field}; originals refused {len(originals_refused)}; rejected for another reason "
              f"{len(wrong_reason)}")
    return Row(id="F2", title="identifier typos", faults=total, sent=total, lost=0, doubled=0, recover_s=None,
               pass_figure="100% agreement with python-stdnum; 100% of swaps rejected (national numbers: all but "
                           "those that are another valid number, as stdnum); >= 99.8% of single-digit changes "
                           "rejected", passed=passed, detail=detail,
               extra={"agreement_pct": agreement, "disagreements": disagreements[:20], "swaps": swaps,
                      "singles": singles, "swap_pct": pct(swaps), "single_pct": pct(singles),
                      "enterprise_swap_pct": pct(enterprise_swaps),
                      "originals_refused": originals_refused[:20], "wrong_reason": wrong_reason[:20],
                      "numbers": 2 * per_kind, "typos": total})


