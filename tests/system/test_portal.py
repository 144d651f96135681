"""The charity portal, end to end: the real server (`collab portal serve`, uvicorn) on a free loopback
port, driven by Debian's chromium through Playwright for what a charity does, and by plain HTTP for
what an attacker tries. One server for the module; each test signs in afresh."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from itsdangerous import TimestampSigner
from playwright.sync_api import Page, expect

from collab import s3
from collab.access import AccessStore
from collab.bucket import free_port
from collab.landing import landing_zone_from_env
from collab.portal import accounts
from collab.registry import Registry
from collab.workspace import Workspace
from tests.browser import axe_violations, chromium
from tests.conftest import write_xlsx
from tests.system.commands import COLLAB, collab

pytestmark = pytest.mark.system
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "portal"
MAX_UPLOAD_MB = 2


@dataclass
class Portal:
    url: str
    home: Path
    passwords: dict[str, str]
    landing: str  # "local" or "s3"
    scratch: Path  # the server's TMPDIR

    def landed(self, charity: str) -> list[str]:
        """The names waiting in a charity's landing area, read as the pipeline reads them."""
        zone = landing_zone_from_env(self.home)
        return sorted(obj.key for obj in zone.pending([charity]))


@pytest.fixture(scope="module", params=["local", "s3"])
def portal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The portal on a free port, on the local landing folder or on SeaweedFS with each charity's own keys."""
    home = tmp_path_factory.mktemp(f"portal-{request.param}") / "var"
    workspace = Workspace(home)
    workspace.init()
    store = AccessStore(workspace)
    with pytest.MonkeyPatch.context() as env, ExitStack() as cleanup:
        for name, value in workspace.environment().items():
            env.setenv(name, value)
        if request.param == "s3":
            state = store.serve(free_port())
            cleanup.callback(store.server.stop, timeout=5)
            for name, value in store.environment(state.endpoint).items():
                env.setenv(name, value)
        passwords = {}
        if request.param == "local":
            # The analyst's command prints the password once (with S3 its JSON is the keys file instead).
            added = collab(home, "charity", "add", "north-pantry", "--name", "North Pantry", "--json").stdout
            passwords["north-pantry"] = json.loads(added)["portal_password"]
        # The others through the same services, without a process each (the CLI starts slowly).
        for charity in ("north-pantry", "south-pantry", "east-pantry", "guessed-pantry"):
            if charity in passwords:
                continue
            Registry(workspace).add(charity, charity.title())
            landing_zone_from_env(home).create_area(charity)
            if request.param == "s3":
                store.issue(charity, os.environ[s3.ENDPOINT_VAR])
            passwords[charity] = accounts.issue_password(workspace, charity)
        port = free_port()
        log = cleanup.enter_context((home.parent / "portal.log").open("w"))
        scratch = home.parent / "tmp"  # the server's temporary folder, where a check's files are held
        scratch.mkdir()
        server = subprocess.Popen(
            [str(COLLAB), "portal", "serve", "--port", str(port), "--max-upload-mb", str(MAX_UPLOAD_MB)],
            env={**os.environ, "TMPDIR": str(scratch)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url + "/sign-in", timeout=2)
                break
            except requests.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((home.parent / "portal.log").read_text()) from None
                time.sleep(0.3)
        try:
            yield Portal(url, home, passwords, request.param, scratch)
        finally:
            server.terminate()
            server.wait(timeout=20)
        assert not [p for p in scratch.rglob("*") if p.is_file()], "the portal left a check's files behind"


def messy_workbook(path: Path) -> Path:
    """A charity's real export: a title row above the header, its own name for the need column and its
    own wording, some dates that are not dates, a formula in a rejected row, and a notes sheet."""
    header = ["Client No", "Date seen", "Problem", "Post Code", "D.O.B", "Monthly Income"]
    problems = ["Food parcel", "Gas & electric", "Debt", "Housing (disrepair)", "Benefits"]
    postcodes = ["B15 2TT", "S1 2AB", "LS1 4AP", "NE1 7RU", "CF10 3AT"]
    rows: list[list[object]] = []
    for i in range(130):
        seen = (dt.date(2026, 1, 5) + dt.timedelta(days=i % 80)).strftime("%d/%m/%Y")
        rows.append([f"C{i:04d}", seen, problems[i % 5], postcodes[i % 5], f"0{1 + i % 9}/03/19{60 + i % 40}", 900 + i])
    for i in range(3, 130, 12):
        rows[i][1] = "ask Sam"
    rows[3][5] = "@SUM(A1:A9)"  # what a spreadsheet would run as a formula
    rows[15][0] = "<script>alert(1)</script>"
    sheets = {"Contacts": [["North Pantry: clients seen, Q1 2026"], header, *rows], "Notes": [["Exported by Jo"]]}
    return write_xlsx(path, sheets)


def _check_page_ok(page: Page, name: str) -> None:
    """No serious or critical accessibility problem, and nothing wider than the screen, on a phone (390
    px) and on a desktop; a screenshot of each for the note."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 900), (390, 844)):  # ends at the phone's width, where the test goes on
        page.set_viewport_size({"width": width, "height": height})
        violations = axe_violations(page)
        assert not violations, f"{name} at {width} px: {violations}"
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} scrolls sideways at {width} px"
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)


def _sign_in_by_keyboard(page: Page, charity: str, password: str) -> None:
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "charity":
            break
    page.keyboard.type(charity)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")


# The browser journey runs once, on the local folder; sending to S3 is covered by the tests below on both zones.
@pytest.mark.parametrize("portal", ["local"], indirect=True)
def test_a_new_charity_goes_from_a_messy_spreadsheet_to_a_sent_loaded_file(portal: Portal, tmp_path: Path) -> None:
    workbook = messy_workbook(tmp_path / "clients Q1.xlsx")
    rounds = 0
    with chromium(tmp_path / "profile", width=390, height=844, bypass_csp=True) as context:
        page = context.new_page()
        page.goto(portal.url + "/files")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()  # every page needs a session
        _check_page_ok(page, "sign-in")
        _sign_in_by_keyboard(page, "north-pantry", portal.passwords["north-pantry"])
        expect(page.get_by_role("heading", name="Check a file before you send it")).to_be_visible()
        _check_page_ok(page, "home")

        # Round 1: the need column is not recognised, so nothing can be kept.
        page.set_input_files("#file", str(workbook))
        page.get_by_role("button", name="Check the file").press("Enter")
        rounds += 1
        expect(page.locator(".status")).to_have_text("Not accepted")
        expect(page.get_by_text("Required column(s) missing: need").first).to_be_visible()
        _check_page_ok(page, "check-rejected")

        # The mapping form: the suggested mapping as drop-downs; the charity says "Problem" is the need.
        page.get_by_role("link", name="Say what your columns and words mean").press("Enter")
        expect(page.get_by_role("heading", name="What your columns and words mean")).to_be_visible()
        _check_page_ok(page, "mapping")
        page.get_by_label("Problem").select_option("need")
        page.get_by_role("button", name="Save and check again").press("Enter")
        rounds += 1
        # The charity's own words are offered only once the column is known: choose the codes it left open.
        if page.locator(".status").inner_text() == "Not accepted" or page.locator("#issue-E_UNKNOWN_CODE").count():
            page.get_by_role("link", name="Say what your columns and words mean").press("Enter")
            for select in page.locator("select[id^=value-]").all():
                if not select.input_value():
                    select.select_option(index=1)
            page.get_by_role("button", name="Save and check again").press("Enter")
            rounds += 1
        expect(page.locator(".status")).to_have_text("Accepted with warnings")
        expect(page.get_by_text("11 row(s) have a problem")).to_be_visible()
        _check_page_ok(page, "check-accepted")

        # Every affected row, and the rejected rows to download, formula-escaped.
        expect(page.locator(".rows-table tbody tr")).to_have_count(11)
        with page.expect_download() as download:
            page.get_by_role("link", name="Download the rows not accepted, with the reasons (CSV)").press("Enter")
        rejected = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
        assert rejected[0][:3] == ["row", "issue_codes", "messages"] and len(rejected) == 12
        assert [r[0] for r in rejected[1:]][:2] == ["6", "18"]  # the spreadsheet's own row numbers
        assert "'@SUM(A1:A9)" in rejected[1]
        assert all(cell == "" or not cell.startswith(("=", "+", "-", "@")) for row in rejected for cell in row)

        page.get_by_role("button", name="Send this file").press("Enter")
        expect(page.get_by_role("heading", name="Your files")).to_be_visible()
        expect(page.get_by_text("Sent, waiting to be picked up")).to_be_visible()
        _check_page_ok(page, "files-waiting")
        assert portal.landed("north-pantry") == ["clients Q1.xlsx"]

        # One charity is too few for a release, so `collab run` exits 1 after taking the file in.
        ran = collab(portal.home, "run", check=False)
        assert "1 file(s): 1 accepted" in ran.stdout, ran.stdout + ran.stderr
        page.reload()
        expect(page.get_by_text("Accepted with warnings and loaded")).to_be_visible()
        row = page.locator(".files-table tbody tr").first
        expect(row).to_contain_text("119")
        expect(row).to_contain_text("2026Q1")
        _check_page_ok(page, "files-checked")
        row.get_by_role("link").press("Enter")
        expect(page.locator(".status")).to_have_text("Accepted with warnings")
        expect(page.get_by_text("This is your first accepted file.")).to_be_visible()
        _check_page_ok(page, "report")

        page.get_by_role("button", name="Sign out").press("Enter")
        expect(page.get_by_text("You have signed out.")).to_be_visible()
    (ARTIFACTS / "rounds.json").write_text(json.dumps({"check_rounds": rounds}))
    assert rounds <= 3


# --- isolation and hostile input, over plain HTTP ------------------------------------------------------


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def _sign_in(portal: Portal, charity: str, password: str | None = None) -> tuple[requests.Session, str]:
    client = requests.Session()
    form = client.get(portal.url + "/sign-in")
    signed = client.post(
        portal.url + "/sign-in",
        data={"csrf": _csrf(form.text), "charity": charity, "password": password or portal.passwords[charity]},
    )
    assert signed.url == portal.url + "/", signed.text[:300]
    return client, _csrf(signed.text)


def _check(portal: Portal, client: requests.Session, csrf: str, content: bytes, name: str = "f.csv") -> str:
    checked = client.post(portal.url + "/check", data={"csrf": csrf}, files={"file": (name, content)})
    assert checked.status_code == 200 and "/check/" in checked.url, checked.text[:500]
    return checked.url.rsplit("/", 1)[1]


GOOD_CSV = (
    "Client ID,Visit Date,Need,Postcode\n" + "".join(f"P{i},0{1 + i % 9}/02/2026,food,S1 2AB\n" for i in range(20))
).encode()


def _signed_out(response: requests.Response, portal: Portal) -> bool:
    return response.url == portal.url + "/sign-in" and "Sign in" in response.text


def test_unauthenticated_requests_get_the_sign_in_page(portal: Portal) -> None:
    anonymous = requests.Session()
    for path in ("/", "/files", "/files/north-pantry-0123456789ab", "/check/" + "a" * 32, "/check/x/mapping"):
        assert _signed_out(anonymous.get(portal.url + path), portal), path
    assert _signed_out(anonymous.post(portal.url + "/check", files={"file": ("a.csv", b"x")}), portal)
    assert anonymous.get(portal.url + "/no-such-page").status_code in (303, 404)


def test_one_charity_cannot_reach_anothers_checks_reports_or_mapping(portal: Portal) -> None:
    a, a_csrf = _sign_in(portal, "north-pantry")
    b, b_csrf = _sign_in(portal, "south-pantry")
    b_token = _check(portal, b, b_csrf, GOOD_CSV, "south.csv")
    # By URL guessing (B's own check address), by changing ids in forms, with B's CSRF token.
    for path in (f"/check/{b_token}", f"/check/{b_token}/download/rejected", f"/check/{b_token}/download/accepted"):
        response = a.get(portal.url + path)
        assert response.status_code == 404 and "south" not in response.text, path
    assert a.get(portal.url + f"/check/{b_token}/mapping").status_code == 404
    assert a.post(portal.url + f"/check/{b_token}/send", data={"csrf": a_csrf}).status_code == 404
    assert a.post(portal.url + f"/check/{b_token}/send", data={"csrf": b_csrf}).status_code == 403
    assert (
        a.post(portal.url + f"/check/{b_token}/mapping", data={"csrf": a_csrf, "column-0": "need"}).status_code == 404
    )
    assert portal.landed("south-pantry") == []
    # B's submissions (a report in staging) by id.
    staged = portal.home / "staging" / "south-pantry-0123456789ab"
    staged.mkdir(parents=True)
    manifest = {
        "submission_id": staged.name,
        "charity_id": "south-pantry",
        "original_name": "south-secret.csv",
        "object_key": "south-secret.csv",
        "size": 1,
        "sha256": "0" * 64,
        "received_at": "2026-03-01T10:00:00Z",
        "archived_to": "x",
        "source_file": "source.csv",
    }
    (staged / "manifest.json").write_text(json.dumps(manifest))
    assert a.get(portal.url + f"/files/{staged.name}").status_code == 404
    assert "south-secret" not in a.get(portal.url + "/files").text
    assert "south-secret" in b.get(portal.url + "/files").text
    # A forged cookie: B's session id signed with another key, and A's cookie re-pointed at B's session.
    b_sid = json.loads(_cookie_payload(b.cookies["collab_portal"]))["sid"]
    forged = requests.Session()
    forged.cookies.set("collab_portal", _signed({"sid": b_sid}, "not-the-portal-key"), domain="127.0.0.1")
    assert _signed_out(forged.get(portal.url + "/files"), portal)
    value = a.cookies["collab_portal"]
    tampered = requests.Session()
    swapped = _b64(json.dumps({"sid": b_sid})) + value[value.index(".") :]
    tampered.cookies.set("collab_portal", swapped, domain="127.0.0.1")
    assert _signed_out(tampered.get(portal.url + "/files"), portal)


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def _cookie_payload(value: str) -> str:
    import base64

    return base64.b64decode(value.split(".")[0]).decode()


def _signed(payload: dict[str, str], key: str) -> str:
    return TimestampSigner(key).sign(_b64(json.dumps(payload))).decode()


def test_a_check_stores_nothing_and_its_files_go_at_sign_out(portal: Portal) -> None:
    client, csrf = _sign_in(portal, "south-pantry")
    marker = b"Q9Z8-unique-marker"
    token = _check(portal, client, csrf, GOOD_CSV.replace(b"P1,", marker + b","), "marked.csv")
    held = [p for p in portal.scratch.rglob("*") if p.is_file() and token in p.parts]
    assert {p.name for p in held} >= {"upload", "report.json", "accepted.csv"}
    in_workspace = [p for p in portal.home.rglob("*") if p.is_file() and marker in p.read_bytes()]
    assert in_workspace == [] and portal.landed("south-pantry") == []
    checked_again = _check(portal, client, csrf, GOOD_CSV, "other.csv")  # one check held at a time
    assert not [p for p in held if p.exists()]
    assert client.post(portal.url + "/sign-out", data={"csrf": csrf}).url == portal.url + "/sign-in"
    assert not [p for p in portal.scratch.rglob("*") if p.is_file() and checked_again in p.parts]


def test_every_row_with_a_problem_is_listed_in_pages(portal: Portal) -> None:
    client, csrf = _sign_in(portal, "south-pantry")
    rows = "".join(f"P{i},0{1 + i % 9}/02/2026,{'food' if i % 3 else 'no such need'},S1 2AB\n" for i in range(330))
    token = _check(portal, client, csrf, ("Client ID,Visit Date,Need,Postcode\n" + rows).encode())
    first = client.get(portal.url + f"/check/{token}")
    assert "110 row(s) have a problem" in first.text and "(page 1 of 3)" in first.text
    second = client.get(portal.url + f"/check/{token}?page=2")
    assert "Rows 51 to 100 of 110 with a problem (page 2 of 3)" in second.text
    listed = re.findall(r'<td data-label="Row">(\d+)</td>', second.text)
    assert listed[0] == str(2 + 150) and len(listed) == 50  # row 2 is the first data row; every third is bad
    assert "(page 3 of 3)" in client.get(portal.url + f"/check/{token}?page=999").text
    assert "(page 1 of 3)" in client.get(portal.url + f"/check/{token}?page=-1%3Cscript%3E").text


def test_a_check_warns_of_surnames_it_cannot_link_only_a_charity_that_links(portal: Portal) -> None:
    """The portal checks as the pipeline will, by the charity's linkage setting in the registry."""
    client, csrf = _sign_in(portal, "east-pantry")  # registered without linkage
    rows = "".join(f"P{i},0{1 + i % 9}/02/2026,food,S1 2AB,Иванов\n" for i in range(20))
    extract = ("Client ID,Visit Date,Need,Postcode,Surname\n" + rows).encode()
    registry = Registry(Workspace(portal.home))
    warned = {}
    try:
        for links in (False, True):
            registry.set_linkage("east-pantry", links)
            token = _check(portal, client, csrf, extract)
            warned[links] = "W_SURNAME_NOT_LINKABLE" in client.get(portal.url + f"/check/{token}").text
    finally:
        registry.set_linkage("east-pantry", False)
    assert warned == {False: False, True: True}


def test_posts_without_the_csrf_token_are_refused(portal: Portal) -> None:
    client, csrf = _sign_in(portal, "east-pantry")
    assert client.post(portal.url + "/check", files={"file": ("a.csv", GOOD_CSV)}).status_code == 403
    assert (
        client.post(portal.url + "/check", data={"csrf": "x" * 43}, files={"file": ("a.csv", GOOD_CSV)}).status_code
        == 403
    )
    assert client.post(portal.url + "/sign-out").status_code == 403
    assert requests.post(portal.url + "/sign-in", data={"charity": "east-pantry", "password": "x"}).status_code == 403
    token = _check(portal, client, csrf, GOOD_CSV)
    assert client.post(portal.url + f"/check/{token}/send").status_code == 403
    assert client.get(portal.url + "/").status_code == 200  # still signed in


def test_revoking_or_replacing_a_password_signs_the_charity_out_at_once(portal: Portal) -> None:
    client, _ = _sign_in(portal, "east-pantry")
    collab(portal.home, "charity", "portal-revoke", "east-pantry")
    after = client.get(portal.url + "/files")
    assert _signed_out(after, portal) and "You have been signed out" in after.text
    refused = requests.Session()
    form = refused.get(portal.url + "/sign-in")
    data = {"csrf": _csrf(form.text), "charity": "east-pantry", "password": portal.passwords["east-pantry"]}
    assert refused.post(portal.url + "/sign-in", data=data).status_code == 401
    portal.passwords["east-pantry"] = accounts.issue_password(Workspace(portal.home), "east-pantry")
    client, _ = _sign_in(portal, "east-pantry")
    stored = (portal.home / "registry" / "east-pantry" / "portal.json").read_text()
    assert portal.passwords["east-pantry"] not in stored and "$argon2id$" in stored
    portal.passwords["east-pantry"] = accounts.issue_password(Workspace(portal.home), "east-pantry")
    assert _signed_out(client.get(portal.url + "/"), portal)  # a newer password ends this session too


def test_sign_in_is_rate_limited_per_charity(portal: Portal) -> None:
    client = requests.Session()
    csrf = _csrf(client.get(portal.url + "/sign-in").text)
    for _ in range(5):
        wrong = client.post(portal.url + "/sign-in", data={"csrf": csrf, "charity": "guessed-pantry", "password": "x"})
        assert wrong.status_code == 401
    right = {"csrf": csrf, "charity": "guessed-pantry", "password": portal.passwords["guessed-pantry"]}
    blocked = client.post(portal.url + "/sign-in", data=right)
    assert blocked.status_code == 429 and "Too many attempts" in blocked.text
    _sign_in(portal, "north-pantry")  # another charity from the same address still signs in


def test_hostile_files_get_plain_pages(portal: Portal) -> None:
    client, csrf = _sign_in(portal, "north-pantry")
    too_big = client.post(
        portal.url + "/check",
        data={"csrf": csrf},
        files={"file": ("big.csv", b"a" * (MAX_UPLOAD_MB * 1024 * 1024 + 1))},
    )
    assert too_big.status_code == 413 and "The file is too big" in too_big.text
    hostile = GOOD_CSV + b'P99,01/02/2026,<script>alert("x")</script>,S1 2AB\n'
    token = _check(portal, client, csrf, hostile, name="../../etc/<img src=x onerror=alert(1)>.csv")
    page = client.get(portal.url + f"/check/{token}")
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert "<img src=x" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    sent = client.post(portal.url + f"/check/{token}/send", data={"csrf": csrf})
    assert sent.status_code == 200
    assert portal.landed("north-pantry") == ["_img src_x onerror_alert(1)_.csv"]
    assert not (portal.home / "etc").exists() and not (portal.home / "landing" / "etc").exists()
    # Sent again under a name still waiting: it replaces that file, and says so.
    for attempt in range(2):
        token = _check(portal, client, csrf, GOOD_CSV, name="twice.csv")
        page = client.post(portal.url + f"/check/{token}/send", data={"csrf": csrf})
        assert page.status_code == 200
        assert ("It replaces the &#39;twice.csv&#39; you sent before" in page.text) is (attempt == 1)
    assert portal.landed("north-pantry").count("twice.csv") == 1
    # A long name in Japanese, 723 bytes: cut at 100 characters it was still 300 bytes, and sending it a 500 page.
    token = _check(portal, client, csrf, GOOD_CSV, name="利用者データ" * 40 + ".csv")
    assert client.post(portal.url + f"/check/{token}/send", data={"csrf": csrf}).status_code == 200
    assert "利用者データ" * 5 + "利用.csv" in portal.landed("north-pantry")
    for content in (b"\x00\x01binary\xff" * 100, b"", b"PK\x03\x04 not really a workbook"):
        token = _check(portal, client, csrf, content, "odd.xlsx")
        page = client.get(portal.url + f"/check/{token}")
        assert page.status_code == 200 and "Not accepted" in page.text and "Traceback" not in page.text
    assert client.get(portal.url + "/check/../../etc/passwd").status_code == 404
    odd_form = requests.post(portal.url + "/sign-in", files={"file": ("a.csv", b"x")})
    assert odd_form.status_code == 400 and "The form did not arrive whole" in odd_form.text
    assert client.get(portal.url + "/files/..%2F..%2Fregistry").status_code == 404
