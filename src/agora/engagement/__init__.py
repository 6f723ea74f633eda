"""Engagement: a points ledger from declarative rules, badges, trust levels, tasks and contests,
leaderboards and a retention digest, all derived from the event log."""
