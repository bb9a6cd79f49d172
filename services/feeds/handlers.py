"""The feeds service's edge: ``reintegration.feed.<enterprise>`` requests, each answered with a pull consumer on
the employer's own feed.

Employers open their JetStream consumers through this small trusted responder rather than through
``$JS.API.CONSUMER.CREATE``: a consumer's configuration is in the request payload, which subject permissions cannot
constrain, and a push consumer's ``deliver_subject`` would let an employer make the server deliver into any subject
of the service account. The responder creates pull consumers only, named ``employer-<enterprise>`` (durable, "live")
and ``employer-<enterprise>-replay`` (from a start time), filtered on the employer's own subjects; the employer then
fetches and acknowledges through its imports (:func:`shared.infra.parties.open_feed` does it all).
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC
from typing import Any

import msgspec
import nats.js.errors
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api

from shared.events.common import IdentifierError, normalise_enterprise_number
from shared.events.feed import FeedError, FeedRequest
from shared.infra.parties import FEED_PREFIX, FEED_STREAMS, PARTY_JS_API, feed_consumer_names, feed_filter

log = structlog.get_logger("feeds")

#: The queue group of the feeds service's replicas.
QUEUE = "feeds"
_DECODER = msgspec.json.Decoder(FeedRequest)
#: One literal subject token: no white space (a trailing newline included), no dot, no wildcard.
_TOKEN = re.compile(r"[^\s.*>]+")


def own_filter(enterprise: str, requested: str | None) -> str:
    """The consumer's filter: the employer's whole feed, or a narrower filter inside it (else :class:`FeedError`)."""
    if requested is None:
        return feed_filter(enterprise)
    tokens = requested.split(".")
    own = feed_filter(enterprise).split(".")[:-1]  # reintegration.employer.<enterprise>
    rest = tokens[len(own):]
    valid = all(t == "*" or (t == ">" and i == len(rest) - 1) or _TOKEN.fullmatch(t) for i, t in enumerate(rest))
    if tokens[: len(own)] != own or not rest or not valid:
        raise FeedError(f"filter {requested!r} is not inside {feed_filter(enterprise)}")
    return requested


def consumer_name(enterprise: str, request: FeedRequest) -> str:
    live, replay = feed_consumer_names(enterprise)
    return live if request.consumer == "live" else replay


def consumer_config(enterprise: str, request: FeedRequest) -> api.ConsumerConfig:
    """The pull consumer a request asks for, pinned to the employer's own subjects."""
    if request.stream not in FEED_STREAMS:
        raise FeedError(f"stream {request.stream!r}: an employer's feed is in {' or '.join(FEED_STREAMS)}")
    name = consumer_name(enterprise, request)
    filter_subject = own_filter(enterprise, request.filter)
    if request.start_time is not None and request.start_time.utcoffset() is None:
        raise FeedError("start_time needs an offset (e.g. 2026-01-01T00:00:00Z)")
    if request.start_time is not None and request.start_sequence is not None:
        raise FeedError("start_time and start_sequence: give one of them")
    return api.ConsumerConfig(
        name=name,
        durable_name=name if request.consumer == "live" else None,
        filter_subject=filter_subject,
        deliver_policy=(api.DeliverPolicy.BY_START_TIME if request.start_time is not None
                        else api.DeliverPolicy.BY_START_SEQUENCE if request.start_sequence is not None
                        else api.DeliverPolicy.NEW if request.deliver == "new" else api.DeliverPolicy.ALL),
        opt_start_time=request.start_time.astimezone(UTC) if request.start_time is not None else None,
        opt_start_seq=request.start_sequence,
        ack_policy=api.AckPolicy.EXPLICIT,
        # A slow client has a minute per message before it is delivered again; nothing is ever dropped from an
        # employer's view (no delivery limit); at most 1000 messages wait for acknowledgement at once.
        ack_wait=60,
        max_deliver=-1,
        max_ack_pending=1000,
        inactive_threshold=None if request.consumer == "live" else 600,
    )


async def open_feed_consumer(js: JetStreamContext, enterprise: str, request: FeedRequest) -> dict[str, Any]:
    """Create (or keep) one of the employer's pull consumers, pinned to its own subjects; what to fetch from."""
    config = consumer_config(enterprise, request)
    name = consumer_name(enterprise, request)
    existing = None
    with contextlib.suppress(nats.js.errors.NotFoundError):
        existing = await js.consumer_info(request.stream, name)
    if existing is not None and (request.consumer == "replay" or request.reset):
        await js.delete_consumer(request.stream, name)
        existing = None
    if existing is not None:  # the live consumer resumes where it stopped: a start or filter would be ignored
        ignored = [field for field, given in (
            ("start_time", request.start_time is not None), ("start_sequence", request.start_sequence is not None),
            ("deliver", request.deliver != "all"),
            ("filter", request.filter is not None and config.filter_subject != existing.config.filter_subject),
        ) if given]
        if ignored:
            raise FeedError(f"{', '.join(ignored)}: the durable consumer {name} exists and resumes where it stopped, "
                            f"so {'these' if len(ignored) > 1 else 'this'} would be ignored; send reset: true to "
                            "start it over with them")
        if existing.num_ack_pending:
            # Reopened with messages delivered but never acknowledged (the employer's client crashed): start it
            # again after its acknowledgement floor, so that they come back now and in order, instead of after the
            # ack wait and behind newer messages. A message acknowledged above the floor comes again: the
            # employer deduplicates on Nats-Msg-Id.
            after = existing.ack_floor.stream_seq
            again = msgspec.structs.replace(request, start_sequence=after + 1, filter=existing.config.filter_subject)
            await js.delete_consumer(request.stream, name)
            info = await js.add_consumer(request.stream, consumer_config(enterprise, again))
            log.info("feed consumer reopened after its acknowledgement floor", employer=enterprise, consumer=name,
                     after=after, unacknowledged=existing.num_ack_pending)
            return {"stream": request.stream, "consumer": name, "filter": info.config.filter_subject,
                    "num_pending": info.num_pending, "api_prefix": PARTY_JS_API, "redelivered_after": after}
    info = existing or await js.add_consumer(request.stream, config)
    return {"stream": request.stream, "consumer": name, "filter": info.config.filter_subject,
            "num_pending": info.num_pending, "api_prefix": PARTY_JS_API}


async def answer(js: JetStreamContext, subject: str, data: bytes) -> dict[str, Any]:
    """Decode one request (the enterprise comes from the subject, which the employer's import pins), open its
    consumer and say where to fetch, or ``{"error": ...}``."""
    enterprise = subject.rsplit(".", 1)[-1]
    try:
        normalise_enterprise_number(enterprise, "subject")
        request = _DECODER.decode(data or b"{}")
        reply = await open_feed_consumer(js, enterprise, request)
    except (FeedError, IdentifierError, msgspec.MsgspecError) as exc:
        return {"error": str(exc)}
    except Exception:
        log.exception("feed consumer failed", employer=enterprise)
        return {"error": "the feeds service could not open the consumer (its log names the error); ask again"}
    log.info("feed consumer opened", employer=enterprise, **{k: reply[k] for k in ("stream", "consumer")},
             start_time=str(request.start_time))
    return reply


async def serve_feed_consumers(nc: NATS, js: JetStreamContext | None = None, *, queue: str = QUEUE) -> Subscription:
    """Answer ``reintegration.feed.<enterprise>`` requests on ``nc`` until it is drained or closed."""
    jetstream = js or nc.jetstream()

    async def handle(msg: Msg) -> None:
        reply = await answer(jetstream, msg.subject, msg.data)
        if msg.reply:
            await msg.respond(json.dumps(reply).encode())

    return await nc.subscribe(f"{FEED_PREFIX}.*", queue=queue, cb=handle)
