"""Broadcasts: audiences, composing and queueing, tracking after queueing, the progress message."""
