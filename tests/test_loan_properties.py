"""Issue 9, "Proof": a hypothesis state machine over sequences of loan actions.

Pay, reverse a payment, promise, edit (due date, amount, phone, address), close, write
off, delete, reassign, charge late fees, plan and queue reminders, in any order, through
the real services, each in its own SAVEPOINT as a caller's transaction would be. After
every step:
- balances add up to the paisa: each loan's summary columns equal its installments, its
  payments (reversals included) and its allocations;
- every change has its audit row (staff actions) or loan event (the daily job), and a
  refused action changes nothing;
- no queued message contradicts its loan: a reminder or broadcast is for an open loan (and
  a reminder for one that is not disputed),
  states what it owes, goes to the borrower's current number, at the loan's version;
- an agent's loan list never holds another agent's loan.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, func, literal, select
from sqlalchemy.orm import Session

from db.agency import DEFAULT
from db.config import LateFeeKind, Settings
from db.models import (
    AuditEvent,
    Borrower,
    HoldKind,
    HoldOutcome,
    Installment,
    Loan,
    LoanEvent,
    LoanState,
    Message,
    MessageKind,
    MessageStatus,
    Payment,
    PaymentAllocation,
    Role,
)
from db.money import format_money
from db.services import access
from db.services.access import on_hold
from db.services.collection import fees, payments, promises
from db.services.errors import ServiceError
from db.services.loans import add as loans
from db.services.loans import archive as loan_archive
from db.services.loans import holds
from db.services.loans.add import EditableField
from db.services.loans.search import LoanFilter
from db.services.sms import outbox
from db.services.sms import truth as message_truth
from scheduler import jobs
from tests.factories import actor, make_loan, make_staff

TODAY = date(2030, 1, 15)
ZERO = Decimal("0")
PROPERTY_SETTINGS = hsettings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_phones = itertools.count(1)
_keys = itertools.count(1)

amounts = st.integers(min_value=1, max_value=400_000).map(lambda paise: Decimal(paise) / 100)


class LoanActions(RuleBasedStateMachine):
    loans = Bundle("loans")
    payments = Bundle("payments")

    def __init__(self, engine: Engine, app_settings: Settings) -> None:
        super().__init__()
        self.conn = engine.connect()
        self.trans = self.conn.begin()
        self.s = Session(
            bind=self.conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        self.settings = app_settings
        # Rows other tests committed may exist: the invariants judge this machine's loans only.
        self.floor = self.s.scalar(select(func.coalesce(func.max(Loan.id), 0)))
        self.agents = [make_staff(self.s, role=Role.AGENT) for _ in range(2)]
        self.manager = actor(make_staff(self.s, role=Role.MANAGER))
        self.admin = actor(make_staff(self.s, role=Role.ADMIN))

    def teardown(self) -> None:
        self.s.close()
        self.trans.rollback()
        self.conn.close()

    # --- doing one action ------------------------------------------------------------

    def _snapshot(self) -> tuple:
        loans_now = self.s.execute(
            select(Loan.id, Loan.version, Loan.amount_paid, Loan.state, Loan.agent_id).order_by(
                Loan.id
            )
        ).all()
        queued = self.s.scalars(select(Message.id).where(Message.status == MessageStatus.QUEUED))
        audits = self.s.scalar(select(func.count(AuditEvent.id)))
        return tuple(loans_now), tuple(sorted(queued)), audits

    def _do(self, fn, *, audit_action: str | tuple[str, ...] | None):
        """fn() in a SAVEPOINT; its audit row (one of audit_action) must follow, a refusal
        must change nothing."""
        before = self._snapshot()
        last_audit = self.s.scalar(select(func.max(AuditEvent.id))) or 0
        try:
            with self.s.begin_nested():
                result = fn()
        except ServiceError:
            self.s.expire_all()
            assert self._snapshot() == before, "a refused action changed something"
            return None
        if audit_action is not None:
            actions = self.s.scalars(select(AuditEvent.action).where(AuditEvent.id > last_audit))
            wanted = {audit_action} if isinstance(audit_action, str) else set(audit_action)
            assert wanted & set(actions), f"no {audit_action} audit row"
        return result

    def _held(self, loan_id: int) -> bool:
        """The loan has an open dispute (or hardship pause) on the day the machine runs."""
        return bool(self.s.scalar(select(on_hold(TODAY, loan_id=literal(loan_id)))))

    def _holder(self, number: str):
        """The loan's own agent (an agent acts on their own loans), else the manager."""
        agent_id = self.s.scalar(select(Loan.agent_id).where(Loan.loan_number == number))
        held = [a for a in self.agents if a.id == agent_id]
        return actor(held[0]) if held else self.manager

    # --- the actions ---------------------------------------------------------------------

    @initialize(
        target=loans,
        count=st.integers(1, 3),
        agent=st.integers(0, 1),
        principal=st.integers(100, 50_000),
    )
    def add(self, count, agent, principal):
        loan = make_loan(
            self.s,
            agent=self.agents[agent],
            principal=Decimal(principal),
            count=count,
            first_due=TODAY - timedelta(days=40),
        )
        return loan.loan_number

    @initialize(target=loans, principal=st.integers(100, 50_000))
    def add_for_the_other_agent(self, principal):
        loan = make_loan(
            self.s,
            agent=self.agents[1],
            principal=Decimal(principal),
            count=2,
            first_due=TODAY - timedelta(days=10),
        )
        return loan.loan_number

    @rule(target=loans, count=st.integers(1, 3), agent=st.integers(0, 1))
    def add_by_service(self, count, agent):
        view = self._do(
            lambda: loans.add_loan(
                self.s,
                actor=actor(self.agents[agent]),
                phone=f"+91800{next(_phones):07d}",
                name="Prop Borrower",
                address=None,
                principal=Decimal("1200.00"),
                first_due=TODAY,
                today=TODAY,
                count=count,
            ),
            audit_action="loan_created",
        )
        return view.loan_number if view else "LN-NONE00"

    @rule(target=payments, number=loans, amount=amounts)
    def pay(self, number, amount):
        result = self._do(
            lambda: payments.record_payment(
                self.s,
                actor=self._holder(number),
                loan_number=number,
                amount=amount,
                today=TODAY,
            ),
            audit_action="payment_recorded",
        )
        return result.payment_id if result else -1

    @rule(payment_id=consumes(payments))
    def reverse(self, payment_id):
        self._do(
            lambda: payments.reverse_payment(
                self.s,
                actor=self.manager,
                payment_id=payment_id,
                reason="bounced",
                today=TODAY,
            ),
            audit_action="payment_reversed",
        )

    @rule(number=loans, amount=amounts, days=st.integers(0, 20))
    def promise(self, number, amount, days):
        self._do(
            lambda: promises.record_promise(
                self.s,
                actor=self._holder(number),
                loan_number=number,
                amount=amount,
                promised_date=TODAY + timedelta(days=days),
                today=TODAY,
            ),
            audit_action="promise_recorded",
        )

    @rule(number=loans, field=st.sampled_from(list(EditableField)), n=st.integers(1, 90))
    def edit(self, number, field, n):
        value = {
            EditableField.BORROWER_NAME: f"Name {n}",
            EditableField.BORROWER_PHONE: f"+91700{next(_phones):07d}",
            EditableField.BORROWER_ADDRESS: f"{n} Market Road",
            EditableField.NEXT_DUE_DATE: (TODAY + timedelta(days=n)).isoformat(),
            EditableField.PRINCIPAL: str(n * 100),
        }[field]
        self._do(
            lambda: loans.edit_loan(
                self.s,
                actor=self._holder(number),
                loan_number=number,
                field=field,
                value=value,
                expected_version=None,
                today=TODAY,
                reason="salary date moved",
            ),
            # An agent's due-date move of more than 30 days is a request for approval (issue 11).
            audit_action=("loan_edited", "approval_requested"),
        )

    @rule(number=loans)
    def close(self, number):
        self._do(
            lambda: loans.close_loan(
                self.s,
                actor=self._holder(number),
                loan_number=number,
                expected_version=None,
                today=TODAY,
            ),
            audit_action="loan_closed",
        )

    @rule(number=loans)
    def write_off(self, number):
        self._do(
            lambda: loans.write_off_loan(
                self.s,
                actor=self.manager,
                loan_number=number,
                reason="cannot be traced",
                expected_version=None,
                today=TODAY,
            ),
            audit_action="loan_written_off",
        )

    @rule(number=loans)
    def delete(self, number):
        # /delete archives: every row kept, hidden, its queued SMS withdrawn.
        self._do(
            lambda: loan_archive.archive_loan(
                self.s,
                actor=self.admin,
                loan_number=number,
                reason="entered twice",
            ),
            audit_action="loan_archived",
        )

    @rule(number=loans)
    def restore(self, number):
        self._do(
            lambda: loan_archive.restore_loan(
                self.s,
                actor=self.admin,
                loan_number=number,
                reason="it was real",
            ),
            audit_action="loan_restored",
        )

    @rule(number=loans)
    def dispute(self, number):
        self._do(
            lambda: holds.open_hold(
                self.s,
                actor=self._holder(number),
                loan_number=number,
                kind=HoldKind.DISPUTE,
                note="says it is paid",
                today=TODAY,
            ),
            audit_action="loan_disputed",
        )

    @rule(number=loans, upheld=st.booleans())
    def resolve(self, number, upheld):
        self._do(
            lambda: holds.resolve_hold(
                self.s,
                actor=self.manager,
                loan_number=number,
                outcome=HoldOutcome.UPHELD if upheld else HoldOutcome.REJECTED,
                reason="checked the ledger",
                today=TODAY,
            ),
            audit_action="hold_resolved",
        )

    @rule(number=loans, agent=st.integers(0, 1))
    def reassign(self, number, agent):
        self._do(
            lambda: loans.reassign_loan(
                self.s,
                actor=self.manager,
                loan_number=number,
                agent_id=self.agents[agent].id,
                today=TODAY,
            ),
            audit_action="loan_reassigned",
        )

    @rule(days=st.integers(0, 60))
    def late_fees(self, days):
        last_event = self.s.scalar(select(func.max(LoanEvent.id))) or 0
        charged = self._do(
            lambda: fees.apply_late_fees(
                self.s,
                today=TODAY + timedelta(days=days),
                kind=LateFeeKind.FIXED,
                amount=Decimal("25.50"),
                percent=ZERO,
                grace_days=3,
            ),
            audit_action=None,
        )
        events = self.s.scalar(
            select(func.count(LoanEvent.id)).where(
                LoanEvent.id > last_event, LoanEvent.kind == "late_fee"
            )
        )
        assert (events > 0) == bool(charged), "a late fee without its loan event"

    @rule(days=st.integers(-5, 40))
    def plan(self, days):
        self._do(
            lambda: jobs.plan_reminders(
                self.s, today=TODAY + timedelta(days=days), settings=self.settings
            ),
            audit_action=None,
        )

    @rule(number=loans)
    def queue_reminder(self, number):
        loan = self.s.scalar(select(Loan).where(Loan.loan_number == number))
        if loan is None or loan.state is not LoanState.ACTIVE or loan.archived_at is not None:
            return  # the planner queues only for live, active loans (access.LIVE_LOAN)
        if self._held(loan.id):
            return  # nor for a disputed one (access.on_hold)
        owed = format_money(loan.outstanding, DEFAULT, plain=True)
        outbox.queue_message(
            self.s,
            to=loan.borrower.phone,
            body=f"Loan {number}: you owe {owed}.",
            kind=MessageKind.REMINDER,
            idempotency_key=f"prop:{next(_keys)}",
            borrower_id=loan.borrower_id,
            loan_id=loan.id,
            rule="prop",
        )

    # --- what must hold after every step -------------------------------------------------

    @invariant()
    def balances_add_up(self):
        self.s.expire_all()
        for loan in self.s.scalars(select(Loan).where(Loan.id > self.floor)):
            insts = self.s.scalars(select(Installment).where(Installment.loan_id == loan.id))
            insts = list(insts)
            paid = self.s.scalar(
                select(func.coalesce(func.sum(Payment.amount), 0)).where(Payment.loan_id == loan.id)
            )
            allocated = self.s.scalar(
                select(
                    func.coalesce(
                        func.sum(PaymentAllocation.fee_amount + PaymentAllocation.amount), 0
                    )
                )
                .join(Payment, Payment.id == PaymentAllocation.payment_id)
                .where(Payment.loan_id == loan.id)
            )
            assert loan.amount_payable == sum(
                (i.principal_due + i.interest_due for i in insts), ZERO
            )
            assert loan.fees_charged == sum((i.fee_due for i in insts), ZERO)
            assert loan.amount_paid == sum((i.amount_paid + i.fee_paid for i in insts), ZERO)
            assert Decimal(paid).quantize(Decimal("0.01")) == loan.amount_paid
            assert Decimal(allocated).quantize(Decimal("0.01")) == loan.amount_paid
            assert loan.outstanding >= 0
            assert loan.state is not LoanState.CLOSED or loan.outstanding == 0

    @invariant()
    def no_queued_message_contradicts_its_loan(self):
        queued = list(
            self.s.scalars(
                select(Message).where(
                    Message.status == MessageStatus.QUEUED, Message.loan_id > self.floor
                )
            )
        )
        for m in queued:
            loan = self.s.get(Loan, m.loan_id)
            assert m.to_phone == loan.borrower.phone, "queued to an old number"
            assert m.loan_version == loan.version, "written for an older version of the loan"
            if m.kind in (MessageKind.REMINDER, MessageKind.BROADCAST):
                assert loan.state is LoanState.ACTIVE, f"queued for a {loan.state} loan"
                assert loan.archived_at is None, "queued for an archived loan"
            if m.kind is MessageKind.REMINDER:
                assert not self._held(loan.id), "a reminder queued for a disputed loan"
            if m.rule == "prop":
                assert m.body.endswith(
                    f"you owe {format_money(loan.outstanding, DEFAULT, plain=True)}."
                )
        assert message_truth.untrue_in(self.s, [m.id for m in queued]) == {}

    @invariant()
    def an_agents_list_holds_only_their_loans(self):
        for agent in self.agents:
            page = loans.list_loans(
                self.s, actor=actor(agent), today=TODAY, filter=LoanFilter.ALL, limit=50
            )
            assert all(item.agent_id == agent.id for item in page.items)

    @invariant()
    def an_agent_sees_no_other_agents_borrower(self):
        for agent in self.agents:
            seen = self.s.scalars(access.scope_borrowers(select(Borrower.id), actor(agent)))
            for borrower_id in seen:
                holders = set(
                    self.s.scalars(select(Loan.agent_id).where(Loan.borrower_id == borrower_id))
                )
                assert holders == {agent.id}, "an agent sees another agent's borrower"


def test_loan_actions_keep_every_invariant(engine, settings):
    run_state_machine_as_test(lambda: LoanActions(engine, settings), settings=PROPERTY_SETTINGS)
