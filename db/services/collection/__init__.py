"""Collecting money: payments and their allocation, promises and contacts, late fees, the ledger."""
