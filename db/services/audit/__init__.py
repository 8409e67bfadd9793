"""The audit trail: writing rows beside each change, and reading the log."""
