"""S1 cross-party access: the probe table of :mod:`lab.probes` for every party."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from lab.chaos.report import Row, scenario

# ================================================================================================ S1 cross-party access


@scenario("S1", "cross-party access")
def cross_party_access(workdir: Path, quick: bool) -> Row:
    """The probe table of :mod:`lab.probes` for every party (the same size quick or not: it is small)."""
    from lab.probes import OUTSIDERS, run_probes, start_system

    shutil.rmtree(workdir / "probes", ignore_errors=True)
    started = time.perf_counter()
    system = start_system(workdir / "probes")
    try:
        async def all_parties() -> list[Any]:
            return [await run_probes(system, party.name) for party in OUTSIDERS]

        results = asyncio.run(all_parties())
    finally:
        system.server.stop()
    cross = sum(x.cross for x in results)
    own = sum(x.own for x in results)
    refused = sum(x.cross_refused for x in results)
    allowed = sum(x.own_allowed for x in results)
    wrong = [f"{x.party}: {w}" for x in results for w in x.wrong]
    extra_violations = sum(x.violations - x.cross_refused for x in results)
    passed = all(x.ok for x in results) and refused == cross and allowed == own
    kinds = Counter(x.party.split(":")[0] for x in results)
    detail = (f"{len(results)} parties ({', '.join(f'{n} {k}' for k, n in kinds.items())}), each with its own "
              f"credentials: cross-party probes refused {refused:,}/{cross:,} ({100 * refused / cross:.1f}%), own "
              f"actions allowed {allowed:,}/{own:,} ({100 * allowed / own:.1f}%); violations beyond the refused "
              f"probes {extra_violations}; connections kept {sum(x.connected for x in results)}/{len(results)}; "
              f"{time.perf_counter() - started:.0f} s")
    return Row(id="S1", title="cross-party access", faults=cross, sent=cross + own, lost=0, doubled=0,
               recover_s=None, pass_figure="100% of cross-party probes refused, 100% of own actions allowed",
               passed=passed, detail=detail,
               extra={"cross": cross, "cross_refused": refused, "own": own, "own_allowed": allowed,
                      "wrong": wrong[:30], "parties": len(results)})


