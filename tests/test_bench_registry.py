"""Every benchmark `geo-engine bench NAME` runs from a module of its own is found (a name that
is a keyword or holds a dash included): a misnamed runner fails here, not after the bench's
minutes of setup."""

from __future__ import annotations

import pytest

from cli.bench import LOOP_BENCHES, runner_of


@pytest.mark.parametrize("name", sorted(LOOP_BENCHES))
def test_each_bench_module_has_its_runner(name: str) -> None:
    runner = runner_of(name)
    assert callable(runner)
    assert runner.__name__ == f"run_{name.replace('-', '_')}"
