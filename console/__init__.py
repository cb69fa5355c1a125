"""The operator console (``qf console``): rounds, matching, flagged donors and a review queue in a browser.

A small Starlette application over the same database as the indexer and the
sidecar. It reads what they wrote; the one thing it writes is reviewers'
verdicts (``qf.review_log`` and ``qf.labels``) and its login record.
"""
