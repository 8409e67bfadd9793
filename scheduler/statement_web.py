"""GET /s/<token>: the PDF statement behind a borrower's signed link (texted for STATEMENT).

A token whose signature does not hold, that has expired, or whose loan is gone or archived
gets the same bare 404 as any unknown address: the page says nothing about why, so a
guessed or altered link learns nothing. The PDF is never cached by a proxy (no-store).
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from db import clock
from db.agency import agency_of
from db.config import Settings
from db.services.statements.data import statement_by_id
from db.services.statements.links import links_of
from db.services.statements.pdf import render_pdf, statement_filename

log = logging.getLogger(__name__)

_NOT_FOUND = PlainTextResponse("Not Found", status_code=404)
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "Referrer-Policy": "no-referrer",
}


def build_statement_app(settings: Settings, factory: sessionmaker[Session]) -> Starlette:
    """The statement links' app, mounted at /s by the command line."""
    links = links_of(settings)
    agency = agency_of(settings)

    def pdf_for(token: str) -> tuple[bytes, str] | None:
        now = clock.utcnow()
        loan_id = links.loan_of(token, now) if links is not None else None
        if loan_id is None:
            return None
        with factory() as session, session.begin():
            st = statement_by_id(
                session, loan_id=loan_id, agency=agency, today=clock.today(agency.zone)
            )
        if st is None:
            return None
        log.info("statement of loan %s opened by its link", st.loan_number)
        return render_pdf(st, agency), statement_filename(agency, st)

    async def statement(request: Request) -> Response:
        found = await run_in_threadpool(pdf_for, request.path_params["token"][:80])
        if found is None:
            return _NOT_FOUND
        data, name = found
        headers = _HEADERS | {"Content-Disposition": f'inline; filename="{name}"'}
        return Response(data, media_type="application/pdf", headers=headers)

    return Starlette(routes=[Route("/{token}", statement, methods=["GET"])])
