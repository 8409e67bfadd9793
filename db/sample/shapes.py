"""The sample loans' shapes (where each stands today) and what one seeding run reports."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from db.models import PromiseState
from db.services.audit.write import AuditAction

SEED_ACTION = AuditAction.SEED.value
STAFF_TELEGRAM_BASE = 900_000_000


class Shape(StrEnum):
    """Where a sample loan stands today."""

    NOT_DUE = "not_due"
    DUE_SOON = "due_soon"
    DUE_TODAY = "due_today"
    OVERDUE_1_30 = "overdue_1_30"
    OVERDUE_31_60 = "overdue_31_60"
    OVERDUE_61_90 = "overdue_61_90"
    OVERDUE_90_PLUS = "overdue_90_plus"
    PAID_OFF = "paid_off"
    WRITTEN_OFF = "written_off"


# Days from today to the first unpaid installment (the last one for PAID_OFF), and weight.
SHAPES = {
    Shape.NOT_DUE: ((8, 60), 24),
    Shape.DUE_SOON: ((1, 7), 12),
    Shape.DUE_TODAY: ((0, 0), 3),
    Shape.OVERDUE_1_30: ((-30, -1), 14),
    Shape.OVERDUE_31_60: ((-60, -31), 7),
    Shape.OVERDUE_61_90: ((-90, -61), 5),
    Shape.OVERDUE_90_PLUS: ((-400, -91), 6),
    Shape.PAID_OFF: ((-400, -1), 25),
    Shape.WRITTEN_OFF: ((-500, -180), 4),
}
# The oldest loan starts before this many days ago (written off at -500 after 23 months).
HISTORY_DAYS = 1250
OVERDUE = {Shape.OVERDUE_1_30, Shape.OVERDUE_31_60, Shape.OVERDUE_61_90, Shape.OVERDUE_90_PLUS}
# The first loans walk through every case, so even a ten-loan seed shows them all.
COVERAGE = (
    (Shape.NOT_DUE, False, None),
    (Shape.DUE_SOON, True, None),
    (Shape.DUE_TODAY, False, PromiseState.OPEN),
    (Shape.OVERDUE_1_30, True, PromiseState.BROKEN),
    (Shape.OVERDUE_31_60, False, PromiseState.OPEN),
    (Shape.OVERDUE_61_90, True, None),
    (Shape.OVERDUE_90_PLUS, False, PromiseState.BROKEN),
    (Shape.PAID_OFF, False, PromiseState.KEPT),
    (Shape.WRITTEN_OFF, True, None),
)


@dataclass(frozen=True)
class SeedReport:
    """What one run added."""

    staff_created: int
    borrowers: int
    loans: int
    installments: int
    payments: int
    promises: int
    shapes: tuple[tuple[Shape, int], ...]
    seconds: float
