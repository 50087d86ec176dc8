"""Register, sign in and sign out: the API's auth endpoints, the pair kept in cookies."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from emporium.services.api_gateway.web.client import ApiSession, Tokens
from emporium.services.api_gateway.web.render import Renderer


def problem_text(body: object, fallback: str) -> str:
    if isinstance(body, dict):
        errors = body.get("errors") or []
        details = [f"{e.get('field', '')}: {e.get('detail', '')}" for e in errors]
        return "; ".join(details) or str(body.get("detail") or fallback)
    return fallback


def safe_next(target: str) -> str:
    """Only a local path: a `next` never sends the visitor to another site."""
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok else "/"


async def sign_in_with(
    request: Request, api: ApiSession, render: Renderer, email: str, password: str
) -> Response | None:
    answer = await api.call(
        "POST", "/api/v1/auth/login", json={"email": email, "password": password}
    )
    if answer.status_code != 200:
        return None
    body = answer.json()
    api.tokens = Tokens(body["access_token"], body["refresh_token"])
    api.renewed = True
    return render.redirect(request, api, safe_next(str(request.state.form.get("next", "/"))))


async def register_form(request: Request, api: ApiSession, render: Renderer) -> Response:
    return render.page(request, api, "register.html", email="", name="", error=None)


async def register(request: Request, api: ApiSession, render: Renderer) -> Response:
    form = request.state.form
    email, name, password = (str(form.get(k, "")) for k in ("email", "name", "password"))
    answer = await api.call(
        "POST", "/api/v1/auth/register", json={"email": email, "password": password, "name": name}
    )
    if answer.status_code == 201:
        done = await sign_in_with(request, api, render, email, password)
        if done is not None:
            return done
    error = problem_text(answer.json() if answer.content else None, "Registration failed.")
    if answer.status_code == 409:
        error = "An account with this email already exists: sign in instead."
    return render.page(request, api, "register.html", 400, email=email, name=name, error=error)


async def signin_form(request: Request, api: ApiSession, render: Renderer) -> Response:
    target = safe_next(request.query_params.get("next", "/"))
    return render.page(request, api, "signin.html", email="", next=target, error=None)


async def signin(request: Request, api: ApiSession, render: Renderer) -> Response:
    form = request.state.form
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    done = await sign_in_with(request, api, render, email, password)
    if done is not None:
        return done
    return render.page(
        request,
        api,
        "signin.html",
        401,
        email=email,
        next=safe_next(str(form.get("next", "/"))),
        error="Wrong email or password (or too many attempts: wait a minute).",
    )


async def signout(request: Request, api: ApiSession, render: Renderer) -> Response:
    if api.tokens is not None:
        await api.call("POST", "/api/v1/auth/logout")
    api.tokens = None
    api.signed_out = True
    return render.redirect(request, api, "/")


ROUTES = (
    ("/register", register_form, ["GET"]),
    ("/register", register, ["POST"]),
    ("/signin", signin_form, ["GET"]),
    ("/signin", signin, ["POST"]),
    ("/signout", signout, ["POST"]),
)
