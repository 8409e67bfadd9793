"""The data and its rules: models, sessions, money and the services every adapter calls."""
