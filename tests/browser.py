"""Debian's chromium driven by Playwright, and axe-core's accessibility check, for every browser test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags chromium tries to reach Google at every start, which this
# closed network refuses.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


@contextmanager
def chromium(
    profile: Path, *, width: int = 1280, height: int = 900, bypass_csp: bool = False
) -> Iterator[BrowserContext]:
    """A headless chromium with its own profile: Playwright never downloads a browser.

    ``bypass_csp`` lets axe-core be injected into pages whose Content-Security-Policy forbids scripts.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (or run `make browser`).")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height},
            bypass_csp=bypass_csp,
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.x A/AA violations of the loaded page at the given impacts.

    Only violations are gathered (``resultTypes``): axe then keeps no details of the nodes that pass, which took
    more than half of its time on pages of many links and cells (the hex maps, the local authority table), and
    still checks every node (``tests/system/test_axe.py``)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make test` installs axe-core from npm (or run `make browser`).")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}, resultTypes: ['violations']})"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"][:5]]}
        for v in result["violations"]
        if v["impact"] in impacts
    ]
