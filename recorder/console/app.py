"""The supervisor console: pages at /console/, signed in with an API key turned into a session cookie.

    console = Console(ctx, registry)     # the ControlApi's context and route registry
    console.mount(app)

Pages are server-rendered shells (templates/) with small JavaScript modules (static/) that call the API's
own routes under /console/api with the session cookie (routes_api.py): the same roles, validation,
handlers and audit entries as the API. The session cookie is HttpOnly and SameSite=Strict (Secure over
TLS); unsafe requests also need the session's CSRF token (header X-CSRF-Token, or the sign-out form's
field) and, when the browser sends one, an Origin of this site.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from recorder.api.auth import BOOTSTRAP_ID, Principal
from recorder.api.context import ApiContext
from recorder.api.models import ID_PATTERN
from recorder.api.problems import ApiError
from recorder.api.registry import Registry, Route
from recorder.console import pages
from recorder.console.live import LiveSampler
from recorder.console.routes_api import PREFIX, SAFE_METHODS, CsrfRefused, audit_csrf, endpoint
from recorder.console.sessions import Session, SessionStore
from recorder.storage.base import StorageError

log = logging.getLogger(__name__)

COOKIE = "callvault_console"
SESSION = web.RequestKey("console_session", Session)
ROOT = "/console"
STATIC = Path(str(resources.files("recorder.console").joinpath("static")))
_ID = re.compile(ID_PATTERN)
MAX_KEY_LENGTH = 256
TRANSCRIPT = "transcript.json"

ACTIONS: dict[str, tuple[str, str]] = {
    "recordings": ("GET", "/v1/recordings"),
    "view": ("GET", "/v1/recordings/{recording_id}"),
    "download": ("GET", "/v1/recordings/{recording_id}/file"),
    "verify": ("POST", "/v1/recordings/{recording_id}/verify"),
    "hold": ("PUT", "/v1/recordings/{recording_id}/legal-hold"),
    "delete": ("DELETE", "/v1/recordings/{recording_id}"),
    "pause": ("POST", "/v1/recordings/{recording_id}/pause"),
    "resume": ("POST", "/v1/recordings/{recording_id}/resume"),
    "metadata": ("PATCH", "/v1/recordings/{recording_id}"),
    "report": ("GET", "/v1/recordings/{recording_id}/report"),
    "live": ("GET", "/v1/rooms"),
    "start": ("POST", "/v1/rooms/{room_id}/start"),
    "stop": ("POST", "/v1/rooms/{room_id}/stop"),
    "audit": ("GET", "/v1/audit"),
    "trail": ("GET", "/v1/recordings/{recording_id}/audit"),
    "transcript": ("GET", "/v1/recordings/{recording_id}/transcript"),
}
"""What the pages offer, by the API route that does it: a role sees an action only if it may call it."""

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self';"
    " img-src 'self' data:; media-src 'self' http: https:; connect-src 'self'; object-src 'none';"
    " base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Console:
    def __init__(self, ctx: ApiContext, registry: Registry) -> None:
        self.ctx = ctx
        self.registry = registry
        self.sessions = SessionStore(ctx.settings.console_session_minutes * 60.0)
        self.sampler = LiveSampler()
        self.routes = {(r.method, r.path): r for r in registry.routes}
        self.proxies = [ipaddress.ip_network(n, strict=False) for n in ctx.settings.console_trusted_proxies]

    # -- who may do what ------------------------------------------------------------------------------

    def route(self, action: str) -> Route:
        return self.routes[ACTIONS[action]]

    def may(self, principal: Principal, action: str) -> bool:
        return ACTIONS[action] in self.routes and principal.role in self.route(action).roles

    def allowed(self, principal: Principal) -> dict[str, bool]:
        return {action: self.may(principal, action) for action in ACTIONS}

    def session_of(self, request: web.Request) -> Session | None:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return None
        key_id = session.principal.key_id
        if key_id != BOOTSTRAP_ID:
            info = next((k for k in self.ctx.keys.list() if k.key_id == key_id), None)
            if info is None or info.revoked_at is not None:  # the key was revoked: so is its sign-in
                self.sessions.end_key(key_id)
                return None
        request[SESSION] = session
        return session

    def authenticate(self, request: web.Request) -> Principal:
        """The principal of the request's session; ApiError 401 without one, 403 when an unsafe request
        lacks the session's CSRF token or comes from another origin."""
        session = self.session_of(request)
        if session is None:
            raise ApiError(401, "sign in to the console first (no session, or it expired)", "unauthorized")
        if request.method not in SAFE_METHODS:
            if not same_origin(request):
                raise CsrfRefused(session.principal, "cross-origin request refused", "origin")
            if not session.csrf_ok(request.headers.get("X-CSRF-Token")):
                raise CsrfRefused(session.principal, "missing or wrong CSRF token (X-CSRF-Token)", "token")
        return session.principal

    # -- mounting -------------------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        add = app.router
        add.add_get(ROOT, self._to_root)
        add.add_get(ROOT + "/", self._home)
        add.add_get(ROOT + "/sign-in", self._sign_in_form)
        add.add_post(ROOT + "/sign-in", self._sign_in)
        add.add_post(ROOT + "/sign-out", self._sign_out)
        add.add_get(ROOT + "/recordings", self._page("recordings", "Recordings", "search.html", "search.js"))
        add.add_get(ROOT + "/recordings/{recording_id}", self._recording_page)
        add.add_get(ROOT + "/live", self._page("live", "Live rooms", "live.html", "live.js"))
        add.add_get(ROOT + "/audit", self._page("audit", "Audit log", "audit.html", "audit.js"))
        add.add_get(ROOT + "/live-tracks", self._live_tracks)
        add.add_get(ROOT + "/integrity/{recording_id}", self._integrity)
        add.add_static(ROOT + "/static", STATIC, show_index=False, follow_symlinks=False)
        timeout = self.ctx.settings.body_timeout
        audit = self.ctx.audit
        for route in self.registry.routes:
            quiet = _quiet_poll if (route.method, route.path) == ACTIONS["live"] else None
            add.add_route(
                route.method,
                PREFIX + route.path,
                endpoint(route, audit, self.authenticate, timeout, quiet=quiet),
            )
        play = self.route("download")
        add.add_get(
            ROOT + "/play/{recording_id}",
            endpoint(play, audit, self.authenticate, timeout, action="recording.play", quiet=_played),
        )
        app.on_response_prepare.append(_security_headers)

    # -- pages ----------------------------------------------------------------------------------------

    def _html(
        self,
        request: web.Request,
        title: str,
        current: str,
        body: str,
        script: str | None,
        status: int = 200,
        data: dict[str, object] | None = None,
    ) -> web.Response:
        session: Session | None = request.get(SESSION)
        principal = session.principal if session else None
        text = pages.page(
            title,
            current,
            body,
            script,
            principal,
            session.csrf if session else "",
            self.allowed(principal) if principal else {},
            data,
        )
        return web.Response(status=status, text=text, content_type="text/html", headers=NO_STORE)

    def _message(self, request: web.Request, status: int, title: str, text: str) -> web.Response:
        return self._html(
            request, title, "", pages.fill("message.html", title=title, text=text), None, status
        )

    def _page(self, action: str, title: str, body: str, script: str) -> Handler:
        async def show(request: web.Request) -> web.StreamResponse:
            session = self.session_of(request)
            if session is None:
                return to_sign_in()
            if not self.may(session.principal, action):
                return self._refused(request, session)
            return self._html(request, title, action, pages.fill(body), script)

        return show

    def _refused(self, request: web.Request, session: Session) -> web.Response:
        role = session.principal.role.value
        return self._message(request, 403, "Not for your role", f"The {role} role cannot open this page.")

    async def _recording_page(self, request: web.Request) -> web.StreamResponse:
        session = self.session_of(request)
        if session is None:
            return to_sign_in()
        rid = request.match_info["recording_id"]
        if not _ID.fullmatch(rid):
            return self._message(request, 404, "No such recording", "That is not a recording id.")
        if not any(self.may(session.principal, a) for a in ("view", "verify", "trail")):
            return self._refused(request, session)
        body = pages.fill("recording.html", recording_id=rid)
        data: dict[str, object] = {"recording": rid}
        if self.may(session.principal, "transcript"):  # asked only when there is one: no 404 in the page
            data["transcript"] = await self._has_transcript(rid)
        return self._html(request, f"Recording {rid}", "recordings", body, "recording.js", data=data)

    async def _has_transcript(self, rid: str) -> bool:
        """Whether the recording has a transcript (its local folder, else its stored objects)."""
        try:
            files = await self.ctx.files(rid)
        except ApiError:
            return False

        def look() -> bool:
            if files.local_path(TRANSCRIPT) is not None:
                return True
            try:
                # (or only a redacted copy's, the unmasked one deleted: transcripts.keep_original)
                names = {n.rsplit("/", 1)[-1] for n in files.stored()}
                return bool({TRANSCRIPT, TRANSCRIPT + ".age"} & names)
            except StorageError:
                return True  # the store cannot say now: ask (the page handles the answer)

        return await asyncio.to_thread(look)

    async def _to_root(self, request: web.Request) -> web.StreamResponse:
        return see_other(ROOT + "/")

    async def _home(self, request: web.Request) -> web.StreamResponse:
        session = self.session_of(request)
        if session is None:
            return to_sign_in()
        for action in ("recordings", "live", "audit"):
            if self.may(session.principal, action):
                return see_other(f"{ROOT}/{action}")
        return self._refused(request, session)

    # -- signing in and out ---------------------------------------------------------------------------

    async def _sign_in_form(self, request: web.Request) -> web.StreamResponse:
        if self.session_of(request) is not None:
            return see_other(ROOT + "/")
        return self._sign_in_page(request, "", 200)

    def _sign_in_page(self, request: web.Request, error: str, status: int) -> web.Response:
        shown = pages.fill("error.html", text=error) if error else ""
        body = pages.template("sign_in.html").substitute(error=shown)
        return self._html(request, "Sign in", "", body, None, status)

    async def _sign_in(self, request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            return self._sign_in_page(request, "Cross-origin sign-in refused.", 403)
        form = await request.post()
        key = form.get("key")
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH:
            return self._sign_in_page(request, "Enter an API key.", 400)
        try:
            principal = self.ctx.keys.authenticate(key.strip())
        except ApiError:
            log.warning("console: a sign-in with an unknown or revoked key from %s", request.remote)
            return self._sign_in_page(request, "Unknown or revoked API key.", 401)
        if not any(self.may(principal, a) for a in ("recordings", "live", "audit")):
            return self._sign_in_page(request, f"The {principal.role.value} role has no console.", 403)
        token, _ = self.sessions.create(principal)
        await self.ctx.audit.append(
            principal.name, principal.role.value, "console.sign_in", None, "ok", request.remote, {}
        )
        response = see_other(ROOT + "/")
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(self.sessions.lifetime),
            path=ROOT,
            httponly=True,
            secure=cookie_secure(request, self.proxies),
            samesite="Strict",
        )
        return response

    async def _sign_out(self, request: web.Request) -> web.StreamResponse:
        session = self.session_of(request)
        if session is not None:
            form = await request.post()
            presented = form.get("csrf")
            crossed = not same_origin(request)
            if crossed or not session.csrf_ok(presented if isinstance(presented, str) else None):
                refused = CsrfRefused(session.principal, "sign-out refused", "origin" if crossed else "token")
                await audit_csrf(self.ctx.audit, refused, request, "POST /console/sign-out", None)
                return self._message(request, 403, "Refused", "Sign-out without this page's CSRF token.")
            self.sessions.end(request.cookies.get(COOKIE))
            p = session.principal
            await self.ctx.audit.append(
                p.name, p.role.value, "console.sign_out", None, "ok", request.remote, {}
            )
        response = see_other(ROOT + "/sign-in")
        response.del_cookie(COOKIE, path=ROOT)
        return response

    # -- data only the console needs ------------------------------------------------------------------

    async def _live_tracks(self, request: web.Request) -> web.StreamResponse:
        principal = self.authenticate(request)
        if not self.may(principal, "live"):
            raise ApiError(403, f"role {principal.role.value} may not see live rooms", "forbidden")
        looked = self.sampler.look(self.ctx.manager, time.monotonic())
        return web.json_response(text=looked.model_dump_json())

    async def _integrity(self, request: web.Request) -> web.StreamResponse:
        """The last verification of a recording (from the audit log): when, by whom, the result."""
        principal = self.authenticate(request)
        if not (self.may(principal, "view") or self.may(principal, "verify")):
            raise ApiError(403, f"role {principal.role.value} may not see this", "forbidden")
        rid = request.match_info["recording_id"]
        if not _ID.fullmatch(rid):
            raise ApiError(422, "not a recording id", "invalid")
        entries = await self.ctx.audit.entries(action="recording.verify", target=rid)
        done = [e for e in entries if e.outcome == "ok"]
        if not done:
            return web.json_response({"checked_at": None})
        last = done[-1]
        return web.json_response(
            {
                "checked_at": last.at,
                "by": last.actor,
                "ok": last.detail.get("ok"),
                "problems": last.detail.get("problems"),
            }
        )


NO_STORE = {"Cache-Control": "no-store"}


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **NO_STORE})


def to_sign_in() -> web.Response:
    return see_other(ROOT + "/sign-in")


def cookie_secure(request: web.Request, proxies: list[IPNetwork]) -> bool:
    """Whether the browser reached us over TLS: the service's own TLS, or a trusted reverse proxy's
    X-Forwarded-Proto (its last value: the one the nearest proxy set). From anyone else the header is
    ignored: a client could send it itself."""
    if request.secure:
        return True
    if not proxies or request.remote is None:
        return False
    try:
        peer = ipaddress.ip_address(request.remote)
    except ValueError:  # a Unix socket
        return False
    if not any(peer in net for net in proxies):
        return False
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    return forwarded.rsplit(",", 1)[-1].strip().lower() == "https"


def same_origin(request: web.Request) -> bool:
    """True unless the browser says the request comes from another site (Origin, or Sec-Fetch-Site). The
    Origin's host is compared, not its scheme: behind a TLS-terminating proxy the browser says https and
    the service sees http."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        return False
    return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")


def _quiet_poll(route: Route, request: web.Request, principal: Principal) -> bool:
    """The live view's refreshes of the room list are not audited (its first look is)."""
    return request.headers.get("X-Console-Poll") == "1"


def _played(route: Route, request: web.Request, principal: Principal) -> bool:
    """A player's further (range) requests of a file whose playback this session already audited."""
    session: Session | None = request.get(SESSION)
    if session is None:
        return False
    key = (request.match_info.get("recording_id", ""), request.query.get("name", ""))
    if key in session.played:
        return True
    session.played.add(key)
    return False


FILE_POLICY = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; media-src 'self'"
"""What the API answers through the console (a recording's files, the forensic report) is shown as an
inert document: no script, its own inline styles and pictures only."""


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == ROOT or request.path.startswith(ROOT + "/"):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith((PREFIX + "/", ROOT + "/play/")):
            response.headers["Content-Security-Policy"] = FILE_POLICY
