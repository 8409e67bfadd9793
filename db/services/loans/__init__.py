"""Loans: adding, changing, archiving, finding and showing them; their history and terms;
the guards every loan service passes.
"""
