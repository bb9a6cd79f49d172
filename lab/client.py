"""A party's side of intake's request-reply, as the demo, the benchmarks and the fault scenarios use it: the
product's own client (:mod:`reintegration.client`), so that they exercise what the parties run."""

from __future__ import annotations

from reintegration.client import NO_ANSWER, Answer, NoFinalAnswerError, request

__all__ = ["NO_ANSWER", "Answer", "NoFinalAnswerError", "request"]
