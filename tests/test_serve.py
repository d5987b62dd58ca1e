"""``geo-engine serve`` as deployed: several workers on one port, all answering, all stopping."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from geo_engine.settings import DatabaseSettings
from tests.cli import CLI, REPO

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (our local server)
        return response.status, json.loads(response.read())


def test_two_workers_share_the_port_and_stop_together(
    make_database: Callable[[], DatabaseSettings],
) -> None:
    database = make_database()
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 (our own CLI)
        [str(CLI), "serve", "--port", str(port), "--workers", "2"],
        cwd=REPO,
        env={**os.environ, "GEO_ENGINE_DATABASE_URL": database.database_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/health")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(f"the API did not start: {server.communicate()[1]}")
                time.sleep(0.2)
        assert status == 200 and body["status"] == "ok"
        # Both workers listen: new connections keep being answered while we count them.
        answers = [_get(f"http://127.0.0.1:{port}/health")[0] for _ in range(40)]
        assert answers == [200] * 40
        workers = subprocess.run(  # noqa: S603
            ["pgrep", "-P", str(server.pid), "-f", "spawn_main"],  # noqa: S607 (procps)
            capture_output=True,
            text=True,
            check=False,  # noqa: S607
        ).stdout.split()
        assert len(workers) == 2, workers
        # As served, a 100 KB query string reaches the request limits: a 414 problem document,
        # not the server's plain-text 400 (fault 4.5 of issue 7).
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(  # noqa: S310 (our local server)
                f"http://127.0.0.1:{port}/v1/projects?cursor={'A' * 100_000}", timeout=10
            )
        assert refused.value.code == 414
        assert refused.value.headers["content-type"] == "application/problem+json"
        assert refused.value.headers["x-content-type-options"] == "nosniff"
        assert json.loads(refused.value.read())["status"] == 414
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in err
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


def test_a_port_another_server_listens_on_is_refused_in_one_line(
    make_database: Callable[[], DatabaseSettings],
) -> None:
    """Another server on the port (with SO_REUSEPORT, as a second `serve` would be): refused,
    rather than silently sharing its connections with it."""
    database = make_database()
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = subprocess.run(  # noqa: S603 (our own CLI)
            [str(CLI), "serve", "--port", str(port), "--workers", "2"],
            cwd=REPO,
            env={**os.environ, "GEO_ENGINE_DATABASE_URL": database.database_url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 7, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_an_unreachable_database_is_one_line_before_any_worker_starts() -> None:
    port = _free_port()
    done = subprocess.run(  # noqa: S603 (our own CLI)
        [str(CLI), "serve", "--port", str(port), "--workers", "2"],
        cwd=REPO,
        env={
            **os.environ,
            "GEO_ENGINE_DATABASE_URL": f"postgresql://nobody:x@127.0.0.1:{_free_port()}/none",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 75, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "cannot reach the database" in done.stderr
