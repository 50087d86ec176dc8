"""Which services may call auth-service's RPCs (`chassis.rpc.acl`: enforced by the server
interceptor; a method missing here is refused to everybody)."""

from __future__ import annotations

from emporium.chassis.catalog import SERVICES
from emporium.chassis.rpc.acl import GATEWAY, CallerTable
from emporium.contracts.rpc.auth.v1 import auth_pb2

VERIFIERS = frozenset(s.name for s in SERVICES if s.name != "auth")

CALLERS = [
    CallerTable.of(
        auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
        {
            # the public identity routes (/api/v1/auth/*)
            "Register": {GATEWAY},
            "Login": {GATEWAY},
            "Refresh": {GATEWAY},
            "Logout": {GATEWAY},
            "SetRoles": {GATEWAY},
            # revocation-aware checks: the gateway on every request, user-service
            "ValidateToken": {GATEWAY, "user"},
            # public keys, for every verifier (chassis.rpc.jwks.JwksTokenVerifier)
            "GetJwks": VERIFIERS,
        },
    )
]
