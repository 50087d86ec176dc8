"""`/api/v1/auth/*`: register, login, refresh, logout (auth-service, then user-service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, StringConstraints

from emporium.chassis.errors import DomainError, unauthenticated
from emporium.chassis.rpc.identity import Caller, acting_as
from emporium.contracts.rpc.auth.v1 import auth_pb2
from emporium.contracts.rpc.user.v1 import user_pb2
from emporium.services.api_gateway.backends import SERVICE_NAME
from emporium.services.api_gateway.constraints import account_email, account_password, user_text
from emporium.services.api_gateway.problems import TooManyRequests
from emporium.services.api_gateway.ratelimit import TokenBucketLimiter
from emporium.services.api_gateway.schemas import RequestModel, problem_responses, semantic_fields
from emporium.services.api_gateway.security import Gateway, bearer_token_of

router = APIRouter(prefix="/api/v1/auth", tags=["identity"])
# Register and Login run argon2id (64 MiB, deliberately slow: ~0.3 s on an idle core, over
# a second on a busy one): more than the 2 s a plain read gets.
PASSWORD_CALL_TIMEOUT_SECONDS = 5.0

# auth-service's own rules (canonical email, password policy) as far as a schema can say
# them, and user-service's profile name: a registration the edge admits is never refused
# by user-service after auth-service created the account (no half-made account).
Email = Annotated[str, account_email()]
Password = Annotated[str, account_password()]
MAX_NAME_LENGTH = 100
Name = Annotated[str, user_text(MAX_NAME_LENGTH)]  # user-service validate_name
REGISTRATION_RULES = {
    "email": "auth-service's canonical form: at most 64 characters before the @",
    "password": (
        "auth-service's policy, after NFKC normalisation: 10 to 128 characters, not one "
        "repeated character, not the email address"
    ),
}


class RegisterBody(RequestModel):
    email: Email
    password: Password = Field(description="10 to 128 characters")
    name: Name


class Registered(BaseModel):
    id: str
    email: str
    name: str


class LoginBody(RequestModel):
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)]
    password: str = Field(min_length=1, max_length=1024)


class RefreshBody(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=1024)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


def _pair(answer: auth_pb2.TokenPair) -> TokenPair:
    return TokenPair(
        access_token=answer.access_token,
        refresh_token=answer.refresh_token,
        token_type=(answer.token_type or "bearer").lower(),
        expires_in=answer.expires_in,
    )


@router.post(
    "/register",
    status_code=201,
    response_model=Registered,
    summary="Create an account (credentials in auth-service, profile in user-service)",
    responses=problem_responses(409),
    openapi_extra=semantic_fields(REGISTRATION_RULES),
)
async def register(body: RegisterBody, backends: Gateway) -> Registered:
    with acting_as(Caller.anonymous()):
        account = await backends.auth.Register(
            auth_pb2.RegisterRequest(email=body.email, password=body.password, name=body.name),
            timeout=PASSWORD_CALL_TIMEOUT_SECONDS,
        )
    # The profile is created by the gateway on the new account's behalf; CreateUser is
    # idempotent by user_id, so the channel retries it on a transient failure.
    with acting_as(Caller.system(SERVICE_NAME)):
        profile = await backends.user.CreateUser(
            user_pb2.CreateUserRequest(user_id=account.user_id, email=account.email, name=body.name)
        )
    return Registered(
        id=profile.id or account.user_id,
        email=profile.email or account.email,
        name=profile.name or body.name,
    )


@router.post(
    "/login",
    response_model=TokenPair,
    summary="Exchange email and password for an access and a refresh token",
    responses=problem_responses(401),
)
async def login(body: LoginBody, request: Request, backends: Gateway) -> TokenPair:
    """Two cheap refusals before auth is asked (auth's own throttle, shared by every
    replica through its kv, is the one that counts failures): per account whatever the
    address, and per address whatever the account."""
    ip = request.client.host if request.client else "unknown"
    per_account: TokenBucketLimiter = request.app.state.login_limiter
    per_address: TokenBucketLimiter = request.app.state.login_address_limiter
    wait = per_account.acquire(body.email.strip().lower())
    if wait > 0:
        raise TooManyRequests(wait, "too many login attempts for this account; retry later")
    wait = per_address.acquire(ip)
    if wait > 0:
        raise TooManyRequests(wait, "too many login attempts from this address; retry later")
    with acting_as(Caller.anonymous()):
        answer = await backends.auth.Login(
            auth_pb2.LoginRequest(email=body.email, password=body.password, client_ip=ip),
            timeout=PASSWORD_CALL_TIMEOUT_SECONDS,
        )
    return _pair(answer)


@router.post(
    "/refresh",
    response_model=TokenPair,
    summary="Rotate a refresh token (a reused one is rejected and revokes its session)",
    responses=problem_responses(401),
)
async def refresh(body: RefreshBody, backends: Gateway) -> TokenPair:
    with acting_as(Caller.anonymous()):
        answer = await backends.auth.Refresh(
            auth_pb2.RefreshRequest(refresh_token=body.refresh_token)
        )
    return _pair(answer)


class LogoutBody(RequestModel):
    refresh_token: str = Field(
        min_length=1,
        max_length=1024,
        description="The session's refresh token: enough to log out without a valid access token",
    )


LOGOUT_DESCRIPTION = """Ends a session: its access token and its refresh token stop working at once.

Send either or both:
- `Authorization: Bearer <access token>`, or
- the body `{"refresh_token": "..."}`, so a client whose access token has expired can
  still end its session.

A refresh token that is not the session's (current or already used) is a 401 and ends
nothing. With a valid refresh token, an expired or unusable bearer token is ignored.
Logging out twice is a 204 both times."""


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    summary="End the session: the access token and its refresh token stop working at once",
    description=LOGOUT_DESCRIPTION,
    responses=problem_responses(401),
    # Either credential is enough: the bearer token, or none (the refresh token in the body).
    openapi_extra={"security": [{"bearer": []}, {}]},
)
async def logout(
    request: Request,
    backends: Gateway,
    body: LogoutBody | None = None,
) -> Response:
    refresh_token = body.refresh_token if body is not None else ""
    try:
        access_token = bearer_token_of(request)
    except DomainError:
        if not refresh_token:
            raise
        access_token = None  # a broken header next to a refresh token: the token decides
    if access_token is None and not refresh_token:
        raise unauthenticated("a bearer access token or a refresh token in the body is required")
    # The tokens travel in the request, not as the caller: auth's interceptor would refuse
    # an expired bearer token before Logout could end the session with the refresh token.
    with acting_as(Caller.anonymous()):
        await backends.auth.Logout(
            auth_pb2.LogoutRequest(access_token=access_token or "", refresh_token=refresh_token)
        )
    return Response(status_code=204)
