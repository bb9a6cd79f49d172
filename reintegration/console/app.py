"""The auditor's console: server-rendered pages over the audit questions, asked with the auditor's credentials.

Routes (every page a GET, so each view has its address and the browser's history is the time machine):

* ``/``: look a case up by its id;
* ``/case/{case_id}``: the case (timeline, events, deadlines, ledger, integrity, disclosures); ``?known=T``: as known
  on T (``asof``), ``?applying=D``: as applying on D (``applied``);
* ``/case/{case_id}/event/{version}``: one event's full recorded content;
* ``/case/{case_id}/item/{item_id}``: one deadline or ledger entry explained;
* ``/case/{case_id}/dossier.html``: the dossier, one self-contained HTML file with a print style sheet.

Each page's questions are asked over NATS (:class:`~reintegration.console.asking.AuditLink`); each answer leaves
its disclosure record in the audit service. The console stores nothing and reads no store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from importlib.resources import files
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from . import views
from .asking import AskError, AuditLink, NoAnswer, Refused, ServerRefused, Unreachable
from .views import BadInput

#: Nothing is loaded from anywhere but the console itself; no frame, no plug-in, no form posted elsewhere.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
PACKAGE = files("reintegration.console")
templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(str(PACKAGE / "templates")),
                                                  autoescape=True))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _utc(value: str | datetime | None) -> str:
    if value is None:
        return ""
    moment = views.when(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


templates.env.filters["pretty_json"] = _json
templates.env.filters["utc"] = _utc


class Page:
    """What every page needs: the link to the audit service and the clock."""

    def __init__(self, link: AuditLink, clock: Callable[[], datetime]) -> None:
        self.link, self.clock = link, clock

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("party", self.link.party)
        context.setdefault("server", self.link.url)
        response = templates.TemplateResponse(request, template, context, status_code=status)
        response.headers["Content-Security-Policy"] = CSP
        return response

    async def ask(self, question: str, case_id: str, **fields: Any) -> Any:
        reply = await self.link.ask(question, {"case_id": case_id, **fields})
        return reply["answer"]

    # --- pages ---------------------------------------------------------------------------------------------------

    async def lookup(self, request: Request) -> Response:
        given = request.query_params.get("case_id")
        if given is None:
            return self.render(request, "lookup.html", title="Look a case up", error=None, given="")
        try:
            case_id = views.parse_case_id(given)
        except BadInput as exc:
            return self.render(request, "lookup.html", status=400, title="Look a case up", error=exc, given=given)
        return RedirectResponse(request.url_for("case", case_id=str(case_id)), status_code=303)

    async def case(self, request: Request) -> Response:
        case_id = str(views.parse_case_id(request.path_params["case_id"]))
        known_text, applying_text = (request.query_params.get(k, "").strip() for k in ("known", "applying"))
        if known_text and applying_text:
            raise BadInput("applying", "give either 'as known on' or 'as applying on', not both")
        known = views.parse_known(known_text) if known_text else None
        applying = views.parse_applying(applying_text) if applying_text else None
        now = self.clock()
        asof_body: dict[str, Any] = ({"date": known.isoformat()} if isinstance(known, date)
                                     and not isinstance(known, datetime) else
                                     {"time": (known or now).isoformat()})
        questions = [self.ask("asof", case_id, **asof_body), self.ask("verify", case_id),
                     self.ask("disclosures", case_id)]
        if applying is not None:
            questions.append(self.ask("applied", case_id, on=applying.isoformat()))
        answers = await asyncio.gather(*questions, return_exceptions=True)
        # the first failure is the page's (in the order asked: asof names an unknown case)
        if failures := [a for a in answers if isinstance(a, BaseException)]:
            raise failures[0]
        asked: list[Any] = list(answers)
        asof, verdict, disclosures, *rest = asked
        applied = rest[0] if rest else None
        known_at = views.when(asof["time"]) if known is not None and asof.get("time") else None
        timeline = views.timeline(asof["events"], known_at=known_at, applying_on=applying)
        chart = views.deadline_chart(asof["deadlines"], applying_on=applying)
        in_force = {e["id"] for e in asof["ledger"]}
        entries = asof.get("recorded_entries") or asof["ledger"]
        ledger = views.ledger_rows(entries, in_force, applying_on=applying)
        mode = ("known" if known is not None else "applying" if applying is not None else "now")
        return self.render(
            request, "case.html", title=f"Case {case_id}", case_id=case_id, asof=asof, verdict=verdict,
            disclosures=disclosures["records"], applied=applied, timeline=timeline, chart=chart, ledger=ledger,
            ledger_recomputed=not asof.get("recorded_entries") and bool(asof["ledger"]), mode=mode,
            known_text=known_text, applying_text=applying_text, applying=applying, now=now,
            late_after=views.LATE_AFTER_DAYS)

    async def event(self, request: Request) -> Response:
        case_id = str(views.parse_case_id(request.path_params["case_id"]))
        try:
            version = int(request.path_params["version"])
        except ValueError:
            raise BadInput("version", f"{request.path_params['version']!r} is not a version number") from None
        history = await self.ask("history", case_id)
        found = [e for e in history if e["version"] == version]
        if not found:
            raise HTTPException(404, f"case {case_id} has versions 1 to {len(history)}, not {version}")
        return self.render(request, "event.html", title=f"Case {case_id}, version {version}", case_id=case_id,
                           event=found[0], versions=len(history))

    async def item(self, request: Request) -> Response:
        case_id = str(views.parse_case_id(request.path_params["case_id"]))
        item = await self.ask("explain", case_id, item_id=request.path_params["item_id"])
        return self.render(request, "item.html", title=f"{item['item'].replace('_', ' ')} {item['rule']}",
                           case_id=case_id, item=item)

    async def dossier(self, request: Request) -> Response:
        from services.audit.dossier import render_html

        case_id = str(views.parse_case_id(request.path_params["case_id"]))
        document = await self.ask("dossier", case_id)
        return HTMLResponse(render_html(document), headers={
            "Content-Disposition": f'attachment; filename="dossier-{case_id}.html"',
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    # --- what went wrong ------------------------------------------------------------------------------------------

    def failed(self, request: Request, exc: Exception) -> Response:
        """One page for every failure: what happened, in words, with the field at fault when an input was."""
        field = None
        if isinstance(exc, BadInput):
            status, title, field = 400, f"Bad input: {exc.field}", exc.field
            said = exc.message
        elif isinstance(exc, ServerRefused):
            status, title = 403, "The server refused these credentials"
            said = (f"The NATS server refused {exc.party} the audit question on {exc.subject}: {exc.said}. Only an "
                    "auditor's credentials may ask the audit questions; start the console with yours.")
        elif isinstance(exc, Unreachable):
            status, title, said = 503, "The server cannot be reached", str(exc)
        elif isinstance(exc, NoAnswer):
            status, title, said = 504, "No answer from the audit service", str(exc)
        elif isinstance(exc, Refused):
            field = exc.refusal.get("field")
            status, title = {
                "not_answerable": (404, "Not found"), "invalid_field": (400, "Bad input"),
                "malformed": (400, "Bad input"), "unauthenticated": (403, "The audit service refused the question"),
                "not_an_auditor": (403, "The audit service refused the question"),
            }.get(exc.code, (502, "The audit service could not answer"))
            said = str(exc) + (" (it says asking again may succeed: reload the page)"
                               if exc.refusal.get("retry") else "")
        elif isinstance(exc, HTTPException):
            status, title, said = exc.status_code, "Not found" if exc.status_code == 404 else "Error", exc.detail
        else:
            raise exc
        return self.render(request, "error.html", status=status, title=title, said=said, field=field,
                           code=getattr(exc, "code", None) or None)


def build_console(link: AuditLink, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Starlette:
    """The console's ASGI application over ``link`` (closed with the application); ``clock``: "now"."""
    page = Page(link, clock)

    async def failed(request: Request, exc: Exception) -> Response:
        return page.failed(request, exc)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        await link.close()

    return Starlette(
        routes=[
            Route("/", page.lookup, name="lookup"),
            Route("/case/{case_id}", page.case, name="case"),
            Route("/case/{case_id}/event/{version}", page.event, name="event"),
            Route("/case/{case_id}/item/{item_id}", page.item, name="item"),
            Route("/case/{case_id}/dossier.html", page.dossier, name="dossier"),
            Mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static"),
        ],
        exception_handlers={AskError: failed, BadInput: failed, HTTPException: failed},
        lifespan=lifespan,
    )


def serve(link: AuditLink, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the console until Ctrl-C."""
    import uvicorn

    uvicorn.run(build_console(link), host=host, port=port, log_level="info", access_log=False)
