"""SMS to and from borrowers.

The outbox, a message's truth at send time, workers' claims, notices, replies and their relay,
suppressions, keyword reply limits, delivery reports, one reminder now.
"""
