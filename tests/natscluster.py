"""A three-node NATS JetStream cluster of a test's own (scripts/nats_cluster.sh with Debian's
``nats-server``), on free ports in a temporary folder: a node can be killed (SIGKILL) and
started again on its data; the whole cluster is killed when the test ends."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.cli import REPO

SCRIPT = REPO / "scripts" / "nats_cluster.sh"
NODES = (1, 2, 3)


def _free_run(length: int, taken: set[int]) -> int:
    """The first of ``length`` consecutive free ports, none in ``taken``."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        ports = range(base, base + length)
        if base + length >= 65_000 or taken & set(ports):
            continue
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        taken.update(ports)
        return base


class NatsCluster:
    """Three ``nats-server`` nodes (``n1``-``n3``) in ``folder``; ``url`` lists them all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        taken: set[int] = set()
        self.client_port = _free_run(3, taken)
        self.route_port = _free_run(3, taken)
        self.http_port = _free_run(3, taken)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "GEO_ENGINE_NATS_PORT": str(self.client_port),
            "GEO_ENGINE_NATS_CLUSTER_PORT": str(self.route_port),
            "GEO_ENGINE_NATS_HTTP_PORT": str(self.http_port),
        }

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{self.client_port + n - 1}" for n in NODES)

    def _script(self, *args: str) -> None:
        subprocess.run(  # noqa: S603  our own script
            [str(SCRIPT), *args], env=self.env, check=True, capture_output=True, timeout=60
        )

    def start(self) -> None:
        """Start the three nodes and wait until each one answers."""
        self._script("up", str(self.folder))

    def _pid(self, node: int) -> int | None:
        pid_file = self.folder / f"n{node}.pid"
        return int(pid_file.read_text()) if pid_file.exists() else None

    def kill(self, node: int) -> None:
        """SIGKILL node ``node`` (1-3): no clean shutdown."""
        pid = self._pid(node)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        (self.folder / f"n{node}.pid").unlink(missing_ok=True)

    def start_node(self, node: int) -> None:
        """Start node ``node`` again on its data, and wait until it answers."""
        self._script("node", str(self.folder), str(node))
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(  # noqa: S310  a local URL of ours
                    f"http://127.0.0.1:{self.http_port + node - 1}/healthz", timeout=1
                ).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def node_of(self, server_name: str) -> int:
        """The node number of a server name (``n2`` → 2)."""
        return int(server_name.removeprefix("n"))

    def stop(self) -> None:
        """Kill every node."""
        for node in NODES:
            self.kill(node)


def serving(folder: Path) -> Iterator[NatsCluster]:
    """A started :class:`NatsCluster` in ``folder``, killed when the generator closes: the body
    of a test module's ``nats_cluster`` fixture (``yield from serving(tmp_path)``)."""
    cluster = NatsCluster(folder)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
