"""bench."""

def bench() -> None:
    """Run a benchmark."""
