"""FastStream consumers on Redis: alerts, digests and engagement feedback (issues to come)."""
