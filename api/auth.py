"""Bearer tokens: HS256 JWTs whose ``sub`` is the user id; ``staff: true`` for platform staff.

No token is an anonymous viewer (public projects only). A token that is present but wrong is
refused with 401 and the reason, rather than silently treated as anonymous.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from api.problems import ApiProblem

ALGORITHM = "HS256"


@dataclass(frozen=True)
class Viewer:
    user_id: int | None = None
    staff: bool = False

    @property
    def anonymous(self) -> bool:
        return self.user_id is None


ANONYMOUS = Viewer()


def _refuse(reason: str) -> ApiProblem:
    return ApiProblem(
        401,
        f"invalid bearer token: {reason}",
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
    )


def viewer_from_token(token: str, secret: str) -> Viewer:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise _refuse("the token has expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _refuse(f"the token has no {exc.claim} claim") from None
    except jwt.InvalidSignatureError:
        raise _refuse("the signature does not match") from None
    except jwt.PyJWTError as exc:
        raise _refuse(str(exc) or "not a JWT") from None
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub.isdigit() or not 0 < int(sub) < 2**63:
        raise _refuse("sub must be a user id (a positive integer, as a string)")
    staff = claims.get("staff", False)
    if not isinstance(staff, bool):
        raise _refuse("staff must be true or false")
    return Viewer(user_id=int(sub), staff=staff)


def make_token(user_id: int, secret: str, *, staff: bool = False, ttl_s: int = 3600) -> str:
    """A token for a user (tests, the demo and the benchmarks use it)."""
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + ttl_s, "staff": staff}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
