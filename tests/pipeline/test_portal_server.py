"""The portal's app served in this process (uvicorn, as `collab portal serve` serves it), for what needs the
server itself or a fault of ours made on purpose: an internal error's record, checks raced in one session, files
deleted on time by a portal nobody asks anything of, downloads asked for in ranges, a burst of wrong passwords, and
mapping forms read at once. Each was found by a hostile trial of the portal."""

from __future__ import annotations

import re
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import uvicorn

import collab.portal.app as app_module
import standards.check
from collab.bucket import free_port
from collab.landing import landing_zone_from_env
from collab.portal import accounts
from collab.portal.app import PortalSettings, create_app
from collab.registry import Registry
from collab.submissions import find_incident
from collab.workspace import Workspace

CHARITY = "north-pantry"
GOOD_CSV = (
    "Client ID,Visit Date,Need,Postcode\n" + "".join(f"P{i},0{1 + i % 9}/02/2026,food,S1 2AB\n" for i in range(20))
).encode()


@dataclass
class Served:
    url: str
    password: str
    held: Path  # the portal's private temporary folders live here


@pytest.fixture
def served(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    Registry(workspace).add(CHARITY, "North Pantry")
    landing_zone_from_env(workspace.home).create_area(CHARITY)
    password = accounts.issue_password(workspace, CHARITY)
    held = tmp_path / "held"
    held.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(held))
    # Idle after 3 s: the sweep runs every 0.75 s. At 1.2 s a check on a busy machine took longer than that, and its
    # session was idle, its file deleted, as soon as its page came back.
    app = create_app(workspace, PortalSettings(idle_minutes=0.05))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the portal did not start"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{server.config.port}", password, held)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def _sign_in(served: Served) -> tuple[requests.Session, str]:
    client = requests.Session()
    form = client.get(served.url + "/sign-in")
    signed = client.post(
        served.url + "/sign-in", data={"csrf": _csrf(form.text), "charity": CHARITY, "password": served.password}
    )
    assert signed.url == served.url + "/", signed.text[:300]
    return client, _csrf(signed.text)


def _check(served: Served, client: requests.Session, csrf: str, name: str = "f.csv") -> requests.Response:
    return client.post(served.url + "/check", data={"csrf": csrf}, files={"file": (name, GOOD_CSV)})


def _held_files(served: Served) -> list[Path]:
    return [p for p in served.held.rglob("*") if p.is_file()]


def test_an_error_of_ours_in_a_check_is_recorded_under_the_reference_the_charity_is_given(
    served: Served, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a fault of ours, made on purpose")

    monkeypatch.setattr(standards.check, "validate_batch", broken)
    client, csrf = _sign_in(served)
    page = _check(served, client, csrf, "contacts.csv")
    assert page.status_code == 200 and "E_INTERNAL" in page.text
    reference = re.search(r"reference (ref-[0-9a-f]+)", page.text)
    assert reference, page.text[:2000]
    assert "a fault of ours" not in page.text  # the charity is given the reference, never the error
    record = find_incident(workspace, reference.group(1))
    assert record is not None, "the reference the charity was given names no record"
    text = record.read_text(encoding="utf-8")
    assert f"portal check by: {CHARITY}" in text and "file: contacts.csv" in text
    assert "RuntimeError: a fault of ours, made on purpose" in text
    assert not [p for p in record.parent.iterdir() if p != record]  # the file itself was not kept


def test_checks_raced_in_one_session_each_get_their_page_and_one_file_is_held(served: Served) -> None:
    client, csrf = _sign_in(served)
    with ThreadPoolExecutor(max_workers=3) as pool:
        pages = list(pool.map(lambda i: _check(served, client, csrf, f"file-{i}.csv"), range(3)))
    # Each waited for the one before and replaced it (together, each deleted the other's file mid-check: 500 pages).
    # The last one's check alone is held and shown; the others' pages say why they are gone.
    held = {p.parent.name for p in _held_files(served)}
    shown = [page for page in pages if page.status_code == 200]
    assert len(held) == 1 and [page.url.rsplit("/", 1)[1] for page in shown] == list(held)
    replaced = [page for page in pages if page not in shown]
    assert len(replaced) == 2, [p.status_code for p in pages]
    assert all(p.status_code == 404 and "until you check another file" in p.text for p in replaced)


def test_a_checked_file_is_deleted_when_its_session_goes_idle_though_nobody_asks_anything(served: Served) -> None:
    client, csrf = _sign_in(served)
    assert _check(served, client, csrf).status_code == 200
    assert any(p.name == "upload" for p in _held_files(served))
    deadline = time.monotonic() + 10
    while _held_files(served):  # no request is made meanwhile
        assert time.monotonic() < deadline, "the idle session's file was never deleted"
        time.sleep(0.2)
    assert client.get(served.url + "/").url == served.url + "/sign-in"


def test_a_download_is_served_whole_whatever_range_it_is_asked_for(served: Served) -> None:
    client, csrf = _sign_in(served)
    token = _check(served, client, csrf).url.rsplit("/", 1)[1]
    whole = client.get(served.url + f"/check/{token}/download/accepted")
    for asked in ("bytes=abc", "bytes=0-10", "bytes=99999999-"):
        served_whole = client.get(served.url + f"/check/{token}/download/accepted", headers={"Range": asked})
        assert served_whole.status_code == 200 and served_whole.content == whole.content, asked
        assert served_whole.headers["x-content-type-options"] == "nosniff"


def test_wrong_passwords_sent_at_once_are_all_counted_against_the_limit(served: Served) -> None:
    """Passwords are checked on threads (Argon2 takes a core for about 140 ms): a burst checked side by side must not
    pass the limit of five failures for one charity from one address before the first is counted."""

    def guess(attempt: int) -> int:
        client = requests.Session()
        form = client.get(served.url + "/sign-in")
        data = {"csrf": _csrf(form.text), "charity": CHARITY, "password": f"wrong-{attempt}"}
        return client.post(served.url + "/sign-in", data=data).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = sorted(pool.map(guess, range(16)))
    assert answers.count(401) == 5 and answers.count(429) == 11, answers
    client = requests.Session()
    form = client.get(served.url + "/sign-in")
    data = {"csrf": _csrf(form.text), "charity": CHARITY, "password": served.password}
    assert client.post(served.url + "/sign-in", data=data).status_code == 429  # the right one too, for a while


def test_the_mapping_form_reads_files_no_more_at_once_than_checks_run(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a file for the mapping form costs what a check costs: four at once took a portal from 0.8 to 1.8 GB
    (a portal trial). They wait for the limit on checks running at once (``parallel_checks``, 2)."""
    running, most = 0, 0
    lock = threading.Lock()
    read_form = app_module.mapping_form

    def counted(*args: object) -> object:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.3)
        with lock:
            running -= 1
        return read_form(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(app_module, "mapping_form", counted)
    pages = []
    for _ in range(4):
        client, csrf = _sign_in(served)
        pages.append((client, _check(served, client, csrf).url + "/mapping"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda page: page[0].get(page[1]).status_code, pages))
    assert answers == [200] * 4 and most == PortalSettings().parallel_checks
