"""Shared contracts: the shapes of what the engine answers and receives (API, CLI, events)."""
