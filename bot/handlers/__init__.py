"""Simple (non-conversation) handlers: common.py for everyone, admin.py for admins.

A module here exposes plain async callbacks (wrapped in bot.context.require_staff when
only logged-in staff may use them) and, if it has several, a handlers() list that
bot.app.handler_list() registers in order.
"""
