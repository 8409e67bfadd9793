"""The one call an adapter makes: check who asks, write the export to a file, audit it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy.orm import Session

from db.agency import Agency
from db.models import Role
from db.services.access import Actor, require_reader
from db.services.audit.write import AuditAction, audit
from db.services.exports.files import Progress, write_file
from db.services.exports.kinds import SPECS, ExportFormat, ExportKind, Period, export_rows

MIME = {
    ExportFormat.CSV: "text/csv",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class ExportResult:
    kind: ExportKind
    fmt: ExportFormat
    rows: int
    filename: str
    mime_type: str
    period: Period | None


def require_exporter(actor: Actor) -> None:
    """Managers, admins and finance export; agents do not (an export is the whole book)."""
    require_reader(actor, Role.MANAGER, "export")


def export_filename(
    agency: Agency, kind: ExportKind, fmt: ExportFormat, today: date, period: Period | None
) -> str:
    """agency-kind[-first_last]-date.ext, in safe characters only."""
    slug = re.sub(r"[^a-z0-9]+", "-", agency.name.lower()).strip("-") or "vasooli"
    middle = f"-{period}" if period is not None else ""
    return f"{slug}-{kind.value}{middle}-{today.isoformat()}.{fmt.value}"


def write_export(
    session: Session,
    *,
    actor: Actor,
    kind: ExportKind,
    fmt: ExportFormat,
    path: Path,
    agency: Agency,
    today: date,
    period: Period | None = None,
    progress: Progress | None = None,
    every: int = 5000,
) -> ExportResult:
    """Write the export actor asked for to path; its audit row is added to the session."""
    require_exporter(actor)
    if not kind.has_period:
        period = None
    rows = export_rows(session, actor=actor, kind=kind, agency=agency, today=today, period=period)
    count = write_file(
        path,
        fmt=fmt,
        header=SPECS[kind].header,
        rows=rows,
        places=agency.minor_units,
        progress=progress,
        every=every,
    )
    details = {"kind": kind.value, "format": fmt.value, "rows": count}
    if period is not None:
        details |= {"from": period.first.isoformat(), "to": period.last.isoformat()}
    audit(
        session,
        actor=actor,
        action=AuditAction.EXPORT_MADE,
        target_type="export",
        target_id=kind.value,
        details=details,
    )
    name = export_filename(agency, kind, fmt, today, period)
    return ExportResult(kind, fmt, count, name, MIME[fmt], period)
