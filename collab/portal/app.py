"""The portal's web application (Starlette, Jinja templates, no JavaScript): sign in, check a file,
fix the mapping, send the file, follow what became of it.

Every page but sign-in needs a live session; every form carries the session's CSRF token; every
value shown is HTML-escaped by Jinja; every error is a plain page, never a stack trace.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collab import s3
from collab.access import AccessStore, write_private
from collab.landing import LocalLandingZone, S3LandingZone, landing_name, landing_zone_from_env
from collab.portal import accounts
from collab.portal.checks import TOKEN, HeldCheck, safe_file_name
from collab.portal.mapping_form import MappingForm, mapping_form, mapping_from_answers
from collab.portal.sessions import Session, SessionTable, SignInLimiter
from collab.portal.submissions import charity_submission, charity_submissions, compared_with_last
from collab.registry import CHARITY_ID, Registry
from collab.submissions import check_options, describe_error, record_check_incident
from collab.workspace import Workspace
from standards.check import CheckOptions
from standards.feedback import FEEDBACK_FILTERS
from standards.issues import FileRejected
from standards.mapping import CharityMapping
from standards.rows import read_affected

ROWS_PER_PAGE = 50
COPY_BYTES = 1024 * 1024
HERE = Path(__file__).resolve().parent
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortalSettings:
    max_upload_bytes: int = 200 * 1024 * 1024
    idle_minutes: float = 30.0
    secure_cookies: bool = False  # True behind an HTTPS reverse proxy: the cookie then never travels in clear
    sign_in_attempts: int = 5
    sign_in_window_minutes: float = 15.0
    parallel_checks: int = 2  # checks running at once, whoever asks; the others wait their turn


class UploadTooLarge(Exception):
    """A request body past the upload limit, found while it streams in."""


class UploadLimit:
    """Refuses a request body larger than the limit as it arrives, before it is all received or stored."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        received = 0

        async def limited() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise UploadTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise UploadTooLarge
            return message

        await self.app(scope, limited, send)


SECURITY_HEADERS = {
    # Nothing but this server's own pages, styles and images; no scripts at all; no framing.
    "content-security-policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}


def _secret_key(workspace: Workspace) -> str:
    path = workspace.secrets / "portal-session.key"
    if not path.exists():
        write_private(path, secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip()


def _templates() -> Environment:
    environment = Environment(
        loader=ChoiceLoader([PackageLoader("collab.portal", "templates"), PackageLoader("standards", "templates")]),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    environment.filters.update(FEEDBACK_FILTERS)  # it renders the feedback templates too
    return environment


def create_app(workspace: Workspace, settings: PortalSettings | None = None) -> Starlette:
    settings = settings or PortalSettings()
    sessions = SessionTable(idle_seconds=settings.idle_minutes * 60)
    limiter = SignInLimiter(settings.sign_in_attempts, settings.sign_in_window_minutes * 60)
    registry = Registry(workspace)
    templates = _templates()
    held_root = Path(tempfile.mkdtemp(prefix="collab-portal-"))  # 0700
    checking = anyio.Semaphore(settings.parallel_checks)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("session", None)
        context.setdefault("max_upload_mb", settings.max_upload_bytes // (1024 * 1024))
        html = templates.get_template(name).render(request=request, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def error(request: Request, status: int, title: str, message: str, session: Session | None = None) -> HTMLResponse:
        return page(request, "error.html.j2", status, title=title, message=message, session=session)

    def forget(session: Session) -> None:
        for directory in session.checks.values():
            shutil.rmtree(directory, ignore_errors=True)
        session.checks.clear()

    async def run_check(check: HeldCheck, file_name: str, mapping: CharityMapping, session: Session) -> None:
        """Check the held file (at most ``parallel_checks`` at once); an error of ours is recorded for the analyst
        under the reference its report gives the charity (``collab incident``), as the pipeline records one."""
        async with checking:
            result = await run_in_threadpool(check.run, file_name, mapping, options(session.charity_id))
        if result.internal_error is not None and result.reference is not None:
            detail = describe_error(result.internal_error)
            await run_in_threadpool(
                record_check_incident, workspace, session.charity_id, file_name, result.reference, detail
            )
            log.error("check %s of %s by %s failed:\n%s", result.reference, file_name, session.charity_id, detail)

    def sweep() -> None:
        for session in sessions.idle():
            forget(session)

    def current(request: Request) -> Session | None:
        """The signed-in session, if its password is still the charity's current one."""
        sweep()
        sid = request.session.get("sid")
        session = sessions.touch(sid) if isinstance(sid, str) else None
        if session is None:
            return None
        account = accounts.account(workspace, session.charity_id)
        if account is None or account.issued_at != session.password_issued_at:
            sessions.end(session.sid)
            forget(session)
            return None
        return session

    def to_sign_in(request: Request, reason: str | None = None) -> Response:
        request.session.clear()
        if reason:
            request.session["notice"] = reason
        return RedirectResponse("/sign-in", status_code=303, headers=SECURITY_HEADERS)

    def signed_in(
        handler: Callable[[Request, Session], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = current(request)
            if session is None:
                had = "sid" in request.session
                return to_sign_in(request, "You have been signed out. Please sign in again." if had else None)
            return await handler(request, session)

        return endpoint

    def csrf_ok(form: Any, expected: str | None) -> bool:
        given = form.get("csrf")
        return isinstance(given, str) and expected is not None and secrets.compare_digest(given, expected)

    def refused(request: Request, session: Session | None = None) -> HTMLResponse:
        return error(
            request,
            403,
            "This form has expired",
            "Go back, reload the page and try again. Forms work only from the page the portal showed you.",
            session,
        )

    def held(session: Session, token: str) -> HeldCheck | None:
        """The session's own held check by token: another session's token is as unknown as a made-up one."""
        if not TOKEN.match(token) or token not in session.checks:
            return None
        check = HeldCheck(token, session.checks[token])
        return check if check.directory.exists() else None

    def options(charity_id: str) -> CheckOptions:
        charity = registry.find(charity_id)
        return check_options(workspace.settings.intake, links_records=charity is not None and charity.linkage)

    # --- sign in and out ---------------------------------------------------------------------

    async def sign_in_form(request: Request) -> Response:
        if current(request) is not None:
            return RedirectResponse("/", status_code=303)
        notice = request.session.pop("notice", None)
        request.session["pre_csrf"] = request.session.get("pre_csrf") or secrets.token_urlsafe(32)
        return page(request, "sign_in.html.j2", notice=notice, csrf=request.session["pre_csrf"])

    async def sign_in(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=5, max_part_size=4096)
        if not csrf_ok(form, request.session.get("pre_csrf")):
            return refused(request)
        charity_id = str(form.get("charity", "")).strip().lower()
        password = str(form.get("password", "")).strip()
        client = request.client.host if request.client else "unknown"
        keys = limiter.keys(client, charity_id if CHARITY_ID.match(charity_id) else None)
        csrf = request.session["pre_csrf"]
        counted = limiter.attempt(*keys)
        if counted is None:
            minutes = round(settings.sign_in_window_minutes)
            message = f"Too many attempts to sign in. Wait {minutes} minutes, then try again."
            return page(request, "sign_in.html.j2", 429, problem=message, csrf=csrf, charity=charity_id)
        # Argon2 takes about 140 ms of a core: checked on a thread, the portal keeps serving meanwhile.
        account = (
            await run_in_threadpool(accounts.verify, workspace, charity_id, password)
            if CHARITY_ID.match(charity_id)
            else None
        )
        if account is None:
            message = "The charity id or the password is not right. Check them and try again."
            return page(request, "sign_in.html.j2", 401, problem=message, csrf=csrf, charity=charity_id)
        limiter.withdraw(counted, *keys)
        # This address's failures for this charity only: one good password must not reset what others guessed.
        limiter.succeeded(limiter.pair_key(client, charity_id))
        session, crowded = sessions.open(charity_id, account.issued_at)
        for old in crowded:  # each session may hold a checked file: a charity's disk use stays bounded
            forget(old)
        request.session.clear()
        request.session["sid"] = session.sid
        return RedirectResponse("/", status_code=303)

    async def sign_out(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=5, max_part_size=4096)
        session = current(request)
        if session is not None:
            if not csrf_ok(form, session.csrf):
                return refused(request, session)
            sessions.end(session.sid)
            forget(session)
        return to_sign_in(request, "You have signed out.")

    # --- check ----------------------------------------------------------------------------------

    async def home(request: Request, session: Session) -> Response:
        charity = registry.get(session.charity_id)
        mapping = registry.mapping(session.charity_id)
        return page(request, "home.html.j2", session=session, charity=charity, mapping=mapping)

    async def check(request: Request, session: Session) -> Response:
        try:
            form = await request.form(max_files=1, max_fields=5, max_part_size=4096)
        except UploadTooLarge:
            return error(
                request,
                413,
                "The file is too big",
                f"Files can be up to {settings.max_upload_bytes // (1024 * 1024):,} MB. Send the quarter's rows "
                "in more than one file, or ask your collaborative contact.",
                session,
            )
        try:
            if not csrf_ok(form, session.csrf):
                return refused(request, session)
            upload = form.get("file")
            if not isinstance(upload, UploadFile) or not upload.filename:
                charity = registry.get(session.charity_id)
                mapping = registry.mapping(session.charity_id)
                problem = "Choose a file to check."
                return page(
                    request, "home.html.j2", 400, session=session, charity=charity, mapping=mapping, problem=problem
                )
            async with session.checking:
                forget(session)  # one check held at a time
                check = HeldCheck.create(held_root, session.charity_id)
                session.checks[check.token] = check.directory
                await run_in_threadpool(_copy, upload, check.upload)
                await run_check(check, safe_file_name(upload.filename), registry.mapping(session.charity_id), session)
        finally:
            await form.close()
        return RedirectResponse(f"/check/{check.token}", status_code=303)

    async def check_result(request: Request, session: Session) -> Response:
        check = held(session, request.path_params["token"])
        if check is None:
            return _gone(request, session)
        report = check.report()
        meta = check.meta()
        total = int(meta["rows_affected"])  # type: ignore[call-overload]
        pages = max(1, -(-total // ROWS_PER_PAGE))
        number = _page_number(request.query_params.get("page"), pages)
        rows = list(read_affected(check.affected, (number - 1) * ROWS_PER_PAGE, ROWS_PER_PAGE))
        return page(
            request,
            "check.html.j2",
            session=session,
            report=report,
            token=check.token,
            rows=rows,
            per_page=ROWS_PER_PAGE,
            rows_total=total,
            page_number=number,
            pages=pages,
            has_rejected=check.rejected.exists(),
            has_accepted=report.accepted and check.accepted.exists(),
            mapping_needed=any(g.code in MAPPING_CODES or g.code.endswith("_UNKNOWN_CODE") for g in report.issues),
        )

    async def download(request: Request, session: Session) -> Response:
        check = held(session, request.path_params["token"])
        kind = request.path_params["kind"]
        if check is None or kind not in ("rejected", "accepted"):
            return _gone(request, session)
        path = check.rejected if kind == "rejected" else check.accepted
        if not path.exists() or (kind == "accepted" and not check.report().accepted):
            return _gone(request, session)
        stem = safe_file_name(str(check.meta()["file_name"])).rsplit(".", 1)[0]
        # Served whole, as every other page: a malformed Range header was answered with a bare plain-text 400 (no
        # page in plain English, none of the security headers).
        request.scope["headers"] = [(name, value) for name, value in request.scope["headers"] if name != b"range"]
        return FileResponse(
            path,
            media_type="text/csv; charset=utf-8",
            filename=f"{stem} - {kind} rows.csv",
            headers=SECURITY_HEADERS,
        )

    # --- mapping ----------------------------------------------------------------------------

    async def mapping_page(request: Request, session: Session) -> Response:
        check = held(session, request.path_params["token"])
        if check is None:
            return _gone(request, session)
        current_mapping = registry.mapping(session.charity_id)
        try:
            # The file is read again: as costly as a check, and counted with them; and never while it is replaced.
            async with session.checking, checking:
                if held(session, check.token) is None:
                    return _gone(request, session)
                form = await run_in_threadpool(mapping_form, check.upload, current_mapping)
        except FileRejected as rejection:
            return error(request, 422, "This file cannot be read", rejection.message, session)
        if request.method == "GET":
            return _mapping_page(request, session, check, form)
        answers = await request.form(max_files=0, max_fields=2000, max_part_size=4096)
        if not csrf_ok(answers, session.csrf):
            return refused(request, session)
        plain = {key: value for key, value in answers.items() if isinstance(value, str)}
        try:
            new_mapping = mapping_from_answers(form, plain, current_mapping)
        except ValueError:
            return _mapping_page(request, session, check, form, status=422)
        staged = check.directory / "mapping.yaml"
        new_mapping.dump(staged)
        registry.set_mapping(session.charity_id, staged)
        staged.unlink()
        async with session.checking:
            if held(session, check.token) is None:  # replaced by a check of another file meanwhile
                return _gone(request, session)
            await run_check(check, str(check.meta()["file_name"]), new_mapping, session)
        return RedirectResponse(f"/check/{check.token}", status_code=303)

    def _mapping_page(
        request: Request, session: Session, check: HeldCheck, form: MappingForm, status: int = 200
    ) -> HTMLResponse:
        return page(
            request,
            "mapping.html.j2",
            status,
            session=session,
            token=check.token,
            form=form,
            file_name=check.meta()["file_name"],
        )

    # --- send and follow --------------------------------------------------------------------------

    async def send(request: Request, session: Session) -> Response:
        form = await request.form(max_files=0, max_fields=5, max_part_size=4096)
        if not csrf_ok(form, session.csrf):
            return refused(request, session)
        check = held(session, request.path_params["token"])
        if check is None:
            return _gone(request, session)
        if not check.report().accepted:
            message = "Only a file that would be accepted can be sent. Fix the errors and check it again."
            return error(request, 409, "This file cannot be sent yet", message, session)
        name = safe_file_name(str(check.meta()["file_name"]))
        report = check.report()
        sent_as = landing_name(name, report.file.format if report.file else None)
        landing = landing_zone_from_env(workspace.home)
        waiting = await run_in_threadpool(landing.pending, [session.charity_id])
        replaces = any(obj.key == sent_as for obj in waiting)
        await run_in_threadpool(_send, workspace, session.charity_id, check.upload, sent_as)
        session.checks.pop(check.token, None)
        check.delete()
        renamed = f" as '{sent_as}'" if sent_as != name else ""
        # Sending under a name already waiting replaces that file, as in a bucket or a folder: said, never silent
        # (the attacker's trial: the first of two sends got no feedback and no word of why).
        replaced = (
            f" It replaces the '{sent_as}' you sent before, which had not been picked up yet: only this one is checked."
            if replaces
            else ""
        )
        request.session["notice"] = (
            f"Thank you: '{name}' is sent{renamed}. It is checked again when it is picked up.{replaced}"
        )
        return RedirectResponse("/files", status_code=303)

    async def files(request: Request, session: Session) -> Response:
        landing = landing_zone_from_env(workspace.home)
        found = await run_in_threadpool(charity_submissions, workspace, landing, session.charity_id)
        notice = request.session.pop("notice", None)
        return page(request, "files.html.j2", session=session, submissions=found, notice=notice)

    async def submission(request: Request, session: Session) -> Response:
        found = charity_submission(workspace, session.charity_id, request.path_params["submission_id"])
        if found is None or found.report is None:
            return error(request, 404, "Page not found", "There is no report of yours at this address.", session)
        landing = landing_zone_from_env(workspace.home)
        everything = await run_in_threadpool(charity_submissions, workspace, landing, session.charity_id)
        compared = compared_with_last(everything, found)
        return page(request, "submission.html.j2", session=session, report=found.report, compared=compared)

    def _gone(request: Request, session: Session) -> HTMLResponse:
        return error(
            request,
            404,
            "Page not found",
            "This check is no longer here: checks are kept only until you check another file, send it or sign "
            "out. Check the file again.",
            session,
        )

    # --- errors -------------------------------------------------------------------------------------

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status in (404, 405):
            return error(request, 404, "Page not found", "There is nothing at this address.")
        if status == 400:  # a form the portal could not read (malformed, too many parts, a part too long)
            return error(request, 400, "The form did not arrive whole", "Go back, reload the page and try again.")
        return error(request, status, "Something went wrong", "Please try again.")

    async def server_error(request: Request, exc: Exception) -> Response:
        return error(
            request,
            500,
            "Something went wrong",
            "The portal could not finish this. Nothing was sent. Please try again; if it happens again, tell "
            "your collaborative contact the time it happened.",
        )

    async def too_large(request: Request, exc: Exception) -> Response:
        return error(
            request,
            413,
            "The file is too big",
            f"Files can be up to {settings.max_upload_bytes // (1024 * 1024):,} MB.",
        )

    async def sweep_while_serving() -> None:
        # A quiet portal still deletes an idle charity's files on time: swept only when a request came, a checked
        # file outlived its time-out for as long as nobody asked for a page.
        while True:
            await anyio.sleep(min(60.0, settings.idle_minutes * 60 / 4))
            sweep()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(sweep_while_serving)
                yield
                tasks.cancel_scope.cancel()
        finally:
            shutil.rmtree(held_root, ignore_errors=True)

    routes = [
        Route("/sign-in", sign_in_form, methods=["GET"]),
        Route("/sign-in", sign_in, methods=["POST"]),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/", signed_in(home), methods=["GET"]),
        Route("/check", signed_in(check), methods=["POST"]),
        Route("/check/{token}", signed_in(check_result), methods=["GET"]),
        Route("/check/{token}/download/{kind}", signed_in(download), methods=["GET"]),
        Route("/check/{token}/mapping", signed_in(mapping_page), methods=["GET", "POST"]),
        Route("/check/{token}/send", signed_in(send), methods=["POST"]),
        Route("/files", signed_in(files), methods=["GET"]),
        Route("/files/{submission_id}", signed_in(submission), methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(UploadLimit, max_bytes=settings.max_upload_bytes),
        Middleware(
            SessionMiddleware,
            secret_key=_secret_key(workspace),
            session_cookie="collab_portal",
            max_age=None,
            same_site="strict",
            https_only=settings.secure_cookies,
        ),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Exception: server_error, UploadTooLarge: too_large},
        lifespan=lifespan,
    )


# Problems a mapping can solve: columns not found or doubled, and dates read the wrong way.
MAPPING_CODES = {
    "E_MISSING_COLUMN",
    "E_DUPLICATE_COLUMN",
    "E_INVALID_DATE",
    "W_DATE_ORDER_ASSUMED",
    "W_DATE_ORDER_US",
    "W_UNMAPPED_COLUMN",
    "E_MISSING_SHEET",
}


def _copy(upload: UploadFile, target: Path) -> None:
    upload.file.seek(0)
    with target.open("wb") as out:
        while chunk := upload.file.read(COPY_BYTES):
            out.write(chunk)


def _page_number(given: str | None, pages: int) -> int:
    number = int(given) if given and given.isdigit() and len(given) < 7 else 1
    return min(max(1, number), pages)


def _send(workspace: Workspace, charity_id: str, path: Path, name: str) -> None:
    """Put the file into the charity's own landing area: the folder, or its bucket with its own keys (streamed)."""
    landing = landing_zone_from_env(workspace.home)
    if isinstance(landing, LocalLandingZone):
        landing.drop(charity_id, path, name=name)
        return
    assert isinstance(landing, S3LandingZone)
    stored = AccessStore(workspace).charity(charity_id)
    if stored is None:
        raise RuntimeError(f"{charity_id} has no S3 keys")
    credentials = s3.CharityCredentials.for_charity(charity_id, landing.endpoint, stored)
    credentials.client().upload_file(str(path), credentials.landing_bucket, name, Config=s3.transfer())
