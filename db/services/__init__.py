"""Services: take a Session and keyword-only arguments, never commit, return frozen dataclasses."""
