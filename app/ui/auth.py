"""Browser login for the UI: an API key typed once, then a signed, expiring cookie.

Browsers cannot send bearer headers from a link, so ``POST /ui/login`` checks the key and
sets a ``HttpOnly; SameSite=Strict`` cookie (path ``/ui``; ``Secure`` over HTTPS) holding a
token signed by the server (``app.ui.session``), not the key: it expires after
``ui_session_seconds`` and ends when the key is revoked. UI pages accept that cookie or the
normal ``Authorization: Bearer`` header.
"""

from __future__ import annotations

import math
import time
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.api.deps import SessionDep, SettingsDep
from app.auth import authenticate
from app.db.models import Tenant
from app.errors import Unauthorized
from app.ui.html import note, page
from app.ui.session import issue_token, tenant_of_token

COOKIE = "grait_ui_key"
LOGIN = "/ui/login"
router = APIRouter(include_in_schema=False)  # mounted under /ui by app.ui.pages

LOGIN_FORM = (
    '<form class="login" method="post" action="/ui/login">'
    '<p><label for="api_key">API key</label><br>'
    '<input type="password" id="api_key" name="api_key" autocomplete="off" required></p>'
    '<p><button type="submit">Log in</button></p></form>'
)


async def get_ui_secret(request: Request) -> bytes:
    """The key that signs UI cookies (``app.ui.session.signing_key``)."""
    ui_secret: bytes = request.app.state.ui_secret  # app.state is untyped (Starlette)
    return ui_secret


UiSecretDep = Annotated[bytes, Depends(get_ui_secret)]


def to_login() -> RedirectResponse:
    """303 to the login page (a browser without a usable key)."""
    return RedirectResponse(LOGIN, status_code=303)


def ui_tenant(request: Request, session: SessionDep, secret: bytes) -> Tenant | Response:
    """The tenant of the request's bearer header, else of the UI cookie (signed with
    ``secret``).

    Returns a response to send instead when there is none: 401 page for a bad bearer
    header, 303 to the login page (clearing the cookie) when the cookie is missing or bad.
    """
    header = request.headers.get("authorization")
    if header:
        try:
            return authenticate(session, header)
        except Unauthorized as exc:
            return page("Not authorized", note(exc.detail), status_code=401)
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return to_login()
    tenant = tenant_of_token(session, secret, cookie, time.time())
    if tenant is None:  # expired, forged, or its key was revoked
        response = to_login()
        response.delete_cookie(COOKIE, path="/ui")
        return response
    return tenant


def _same_origin(request: Request) -> bool:
    """False when the browser says the form was posted from another site."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


@router.get("/login")
def login_form() -> Response:
    """The login page: one password field for the API key."""
    return page("Log in", LOGIN_FORM, nav=False)


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    secret: UiSecretDep,
    api_key: Annotated[str, Form()] = "",
) -> Response:
    """Check ``api_key``; on success set the cookie and go to the jobs list, else a 401 page."""
    if not _same_origin(request):
        return page("Log in", note("cross-site login refused") + LOGIN_FORM, 403, nav=False)
    key = api_key.strip()
    try:
        authenticate(session, f"Bearer {key}")
    except Unauthorized:
        return page("Log in", note("invalid API key") + LOGIN_FORM, status_code=401, nav=False)
    lifetime = settings.ui_session_seconds
    token = issue_token(secret, key, time.time(), lifetime)
    response = RedirectResponse("/ui/jobs", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=math.ceil(lifetime),
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout() -> Response:
    """Forget the cookie and go back to the login page."""
    response = to_login()
    response.delete_cookie(COOKIE, path="/ui")
    return response
