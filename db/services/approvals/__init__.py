"""Four eyes on money (issue 11): a change asked for by one person, decided by another.

- requests.py: submit a request (its audit row, and a card queued for each approver),
  withdraw it, list and read requests. Kinds are ApprovalKind; who may decide which is in
  db/services/access.py (approver_role, check_approver).
- kinds.py: one handler per kind: how a request of that kind is asked for (checked with the
  same service that will apply it) and how an approval applies it.
- decide.py: approve or reject. The first decision wins (a conditional UPDATE ... WHERE
  state = 'pending'); approving applies the change in the same transaction, and a change
  that is no longer valid (the loan closed meanwhile) refuses the approval, changing nothing.
- cards.py: what the bot's job sends: approvers' cards, the requester's outcome, reminders.
"""
