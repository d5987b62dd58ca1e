"""Bearer tokens: HS256 JWTs whose ``sub`` is the user id; ``staff: true`` for platform staff.

No token is an anonymous viewer (public projects only). A token that is present but wrong is
refused with 401 and the reason, rather than silently treated as anonymous. Every claim the
engine reads is checked for its type: ``sub`` a string of ASCII digits (a user id), ``staff``
true or false, ``exp``, ``iat`` and ``nbf`` integers (PyJWT checks those three).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import jwt

from contracts.errors import Unauthenticated

ALGORITHM = "HS256"


@dataclass(frozen=True)
class Viewer:
    user_id: int | None = None
    staff: bool = False

    @property
    def anonymous(self) -> bool:
        return self.user_id is None


ANONYMOUS = Viewer()
USER_ID = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)
_UNSAFE_IN_HEADER = re.compile(r'[^\x20-\x7e]|["\\]')


def _refuse(reason: str) -> Unauthenticated:
    # The reason goes into a quoted header value: printable ASCII only, no quote or backslash.
    quoted = _UNSAFE_IN_HEADER.sub("?", reason)
    return Unauthenticated(
        f"invalid bearer token: {reason}",
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{quoted}"'},
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
    # isdigit() and int() take "²" and "٧": only ASCII digits make a user id.
    if not isinstance(sub, str) or USER_ID.fullmatch(sub) is None or int(sub) >= 2**63:
        raise _refuse("sub must be a user id (a positive integer in ASCII digits, as a string)")
    staff = claims.get("staff", False)
    if not isinstance(staff, bool):
        raise _refuse("staff must be true or false")
    return Viewer(user_id=int(sub), staff=staff)


def make_token(user_id: int, secret: str, *, staff: bool = False, ttl_s: int = 3600) -> str:
    """A token for a user (tests, the demo and the benchmarks use it)."""
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + ttl_s, "staff": staff}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
