"""Account statements (issue 13): one loan's terms, schedule, payments, fees and balance.

data.py gathers a statement (for staff through access; for the borrower's signed link by
the loan's id), pdf.py draws it with fpdf2's core fonts, links.py signs and checks the
short-lived link a borrower gets by texting STATEMENT.
"""
