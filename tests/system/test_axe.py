"""The accessibility check every browser test runs still sees what breaks the rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import axe_violations, chromium

pytestmark = pytest.mark.system

BROKEN = """<!doctype html><html><body>
<main><img src="map.png"><p style="color: #eee; background: #fff">faint</p><a href="#top"></a></main>
</body></html>"""


def test_axe_reports_each_rule_a_page_breaks(tmp_path: Path) -> None:
    with chromium(tmp_path / "profile") as browser:
        page = browser.new_page()
        page.set_content(BROKEN)
        found = {violation["id"]: violation["nodes"] for violation in axe_violations(page)}
    assert found == {
        "color-contrast": [["p"]],
        "document-title": [["html"]],
        "html-has-lang": [["html"]],
        "image-alt": [["img"]],
        "link-name": [["a"]],
    }
