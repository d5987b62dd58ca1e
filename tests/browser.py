"""The real headless Chromium the browser tests drive (Debian's ``/usr/bin/chromium`` through
Playwright), and the accessibility check they share: axe-core from the npm registry
(``web/node_modules/axe-core``, installed by ``make install``), injected into the page.

The RGAA (France's accessibility reference for public bodies) is built on WCAG 2.1 AA: axe runs
the ``wcag2a``, ``wcag2aa``, ``wcag21a`` and ``wcag21aa`` rules, and a page passes when it has no
violation of impact ``serious`` or ``critical``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
# --disable-gpu leaves WebGL to SwiftShader (software); --enable-unsafe-swiftshader keeps that
# allowed on Chromium builds that no longer fall back to it on their own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = ROOT / "test-artifacts"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = frozenset({"serious", "critical"})


def chromium() -> Iterator[Browser]:
    """A launched headless Chromium (use as a module-scoped fixture's body); skips with the
    reason when the browser is absent, and fails instead in CI."""
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is absent: install it with `apt-get install -y chromium`"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI needs the browser test)")
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A/AA violations of ``page`` as it is now, serious and critical only;
    each with its rule id, impact, help text and the offending nodes' selectors."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is absent: run `make install` (npm ci --prefix web)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_AA
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]
