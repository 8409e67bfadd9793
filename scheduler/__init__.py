"""The SMS worker."""
