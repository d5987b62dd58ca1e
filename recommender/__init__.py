"""Ranks projects for a citizen by geographic relevance and interests (issues to come)."""
