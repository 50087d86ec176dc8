"""Who is calling: `Authorization: Bearer <token>` -> auth.ValidateToken -> `Caller`.

The gateway asks auth-service on every authenticated request rather than only checking the
JWT signature locally: `ValidateToken` also consults the session store, so a logout (or a
refresh-token reuse that revoked the family) stops the token at once (docs/identity.md).
The resulting `Caller` keeps the token, and routes call backends inside
`identity.acting_as(caller)`, so each backend receives the user id, roles and the original
token in metadata and authorizes again (owner or admin).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from emporium.chassis.errors import permission_denied, unauthenticated
from emporium.chassis.rpc.identity import Caller, acting_as
from emporium.contracts.rpc.auth.v1 import auth_pb2
from emporium.services.api_gateway.backends import Backends

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="The access token from POST /api/v1/auth/login.",
)


def get_backends(request: Request) -> Backends:
    backends: Backends = request.app.state.backends
    return backends


Gateway = Annotated[Backends, Depends(get_backends)]


async def validate_token(backends: Backends, token: str) -> Caller:
    """The caller a token stands for, according to auth-service (401 when it says no)."""
    with acting_as(Caller.anonymous()):  # validating is not done on anyone's behalf
        answer = await backends.auth.ValidateToken(
            auth_pb2.ValidateTokenRequest(access_token=token, omit_email=True)
        )
    if not answer.user_id:
        raise unauthenticated("invalid access token")
    return Caller(answer.user_id, frozenset(answer.roles), token)


def bearer_token_of(request: Request) -> str | None:
    """The token of the request's `Authorization: Bearer <token>`; None without the header,
    401 when the header is there but is not a bearer token."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("the Authorization header must be `Bearer <access token>`")
    return token.strip()


async def optional_caller(
    request: Request,
    backends: Gateway,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller | None:
    """None without an Authorization header; a header that is present must be valid."""
    if "authorization" not in request.headers:
        return None
    if credentials is None or not credentials.credentials.strip():
        raise unauthenticated("the Authorization header must be `Bearer <access token>`")
    return await validate_token(backends, credentials.credentials.strip())


async def require_user(caller: Annotated[Caller | None, Depends(optional_caller)]) -> Caller:
    if caller is None:
        raise unauthenticated("a bearer access token is required")
    return caller


async def require_admin(caller: Annotated[Caller, Depends(require_user)]) -> Caller:
    """Checked here to answer 403 early; every backend checks the role again."""
    if not caller.is_admin:
        raise permission_denied("admin role required")
    return caller


OptionalUser = Annotated[Caller | None, Depends(optional_caller)]
User = Annotated[Caller, Depends(require_user)]
Admin = Annotated[Caller, Depends(require_admin)]
