"""Exports (issue 13): loans, the overdue list, payments and deliveries as CSV or XLSX.

kinds.py says what each export holds (its columns and its scoped, chunked query), cells.py
how a value becomes a cell (formula injection neutralised), files.py writes the rows to a
file with progress, and run.py is the one call an adapter makes (with its audit row).
"""
