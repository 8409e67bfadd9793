"""The `vasooli` command line: the front door for people, the one place wiring bot, worker, web.

The only package that may import both adapters (bot and scheduler); nothing imports it.
main.py parses and dispatches; database.py, staff.py, processes.py and demo.py hold the
commands.
"""
