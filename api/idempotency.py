"""Idempotency-Key for writes: the first answer is stored with the change, and replayed.

A retried call (same key, same method, path and body) gets the first answer again, with
`Idempotent-Replayed: true`, and changes nothing. The same key with a different request is
refused (422). Two calls racing with one key: the unique (api_key_id, key) lets one commit;
the other rolls its change back and replays the winner's answer. A refused call (4xx) stores
nothing, so it may be retried with the same key once the cause is fixed.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse, Response

from api.problems import problem
from db.services.staff.api_calls import ApiCaller, store_answer, stored_answer

REPLAYED = "Idempotent-Replayed"


def fingerprint(method: str, path: str, body: BaseModel) -> str:
    """The request as a hash: method, path and the validated body in a canonical form."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def replay(session: Session, who: ApiCaller, key: str, request_hash: str) -> Response | None:
    """The stored answer for key (None when there is none yet), or 422 for another request."""
    stored = stored_answer(session, key_id=who.key_id, key=key)
    if stored is None:
        return None
    if stored.request_hash != request_hash:
        return problem(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request; use a new key.",
        )
    return JSONResponse(stored.body, status_code=stored.status, headers={REPLAYED: "true"})


def commit(
    session: Session, who: ApiCaller, key: str, request_hash: str, status: int, out: BaseModel
) -> Response:
    """Store the answer beside the change and commit both, or replay a racing winner's."""
    body = out.model_dump(mode="json")
    if not store_answer(
        session, key_id=who.key_id, key=key, request_hash=request_hash, status=status, body=body
    ):
        session.rollback()
        answer = replay(session, who, key, request_hash)
        assert answer is not None  # the row that made our insert fail is committed
        return answer
    session.commit()
    return JSONResponse(body, status_code=status)
