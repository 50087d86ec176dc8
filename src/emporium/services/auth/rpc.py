"""gRPC entrypoint of auth-service: translates requests and delegates to handlers.

Who may call what: Register, Login, Refresh, GetJwks and ValidateToken are open (the
gateway calls them for anonymous clients; possession of the password or token is the
proof); Logout needs the access token or the refresh token of the session it ends (in the
request, not the caller's metadata, so an expired access token does not stop it);
SetRoles needs an admin. Which services may call each method: `callers.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from emporium.chassis.rpc.identity import Caller
from emporium.contracts.rpc.auth.v1 import auth_pb2, auth_pb2_grpc
from emporium.services.auth.handlers import Auth, IssuedTokens

SERVICE_NAME: str = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
TOKEN_TYPE = "bearer"


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _token_pair(tokens: IssuedTokens) -> auth_pb2.TokenPair:
    return auth_pb2.TokenPair(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_type=TOKEN_TYPE,
        expires_in=tokens.expires_in,
        user_id=tokens.user_id,
    )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    """`AuthService` (auth.proto)."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth

    async def Register(self, request: Any, context: Any) -> auth_pb2.RegisterResponse:
        done = await self.auth.register(request.email, request.password, request.name)
        return auth_pb2.RegisterResponse(
            user_id=done.user_id,
            email=done.email,
            roles=list(done.roles),
            created_at=_timestamp(done.created_at),
        )

    async def Login(self, request: Any, context: Any) -> auth_pb2.TokenPair:
        client = request.client_ip or _peer_host(context)
        return _token_pair(await self.auth.login(request.email, request.password, client))

    async def Refresh(self, request: Any, context: Any) -> auth_pb2.TokenPair:
        return _token_pair(await self.auth.refresh(request.refresh_token))

    async def Logout(self, request: Any, context: Any) -> auth_pb2.LogoutResponse:
        await self.auth.logout(request.access_token, request.refresh_token)
        return auth_pb2.LogoutResponse()

    async def ValidateToken(self, request: Any, context: Any) -> auth_pb2.ValidateTokenResponse:
        info = await self.auth.validate(request.access_token, with_email=not request.omit_email)
        return auth_pb2.ValidateTokenResponse(
            user_id=info.user_id,
            roles=list(info.roles),
            session_id=info.session_id,
            expires_at=_timestamp(info.expires_at),
            email=info.email,
        )

    async def GetJwks(self, request: Any, context: Any) -> auth_pb2.GetJwksResponse:
        keys = [auth_pb2.JsonWebKey(**jwk) for jwk in self.auth.jwks()["keys"]]
        return auth_pb2.GetJwksResponse(keys=keys)

    async def SetRoles(self, request: Any, context: Any) -> auth_pb2.SetRolesResponse:
        roles = await self.auth.set_roles(request.user_id, request.roles)
        return auth_pb2.SetRolesResponse(user_id=request.user_id, roles=list(roles))


def _peer_host(context: Any) -> str:
    """`ipv4:127.0.0.1:5555` -> `127.0.0.1`: the throttle's client when the gateway sent none."""
    peer = str(context.peer() or "")
    kind, _, rest = peer.partition(":")
    host = rest.rsplit(":", 1)[0] if kind in ("ipv4", "ipv6") else peer
    return host.strip("[]")


class LocalTokenVerifier:
    """auth-service's own `TokenVerifier`: its key set plus the session check, no network."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth

    async def verify(self, token: str) -> Caller:
        info = await self.auth.validate(token, with_email=False)
        return Caller(info.user_id, frozenset(info.roles), token)
