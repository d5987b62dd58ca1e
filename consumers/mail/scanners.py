"""Telling a mail-security scanner's fetch of a link from a person's click, by the request
alone. Pure.

Scanners (Microsoft Defender Safe Links, Mimecast, Proofpoint, Barracuda…) fetch every link of
a message, often before the person sees it. What the request shows of them:

- ``HEAD``: browsers never send it for a link a person follows;
- a user agent naming a scanner or a non-browser client (:data:`SCANNER_AGENTS`), or none.

What only the mail's history shows (a fetch within seconds of the mail's sending, a burst of
several of its links within a second) is checked against ``mail_delivery`` by
``geo_engine.mail_actions.follow_link``. A fetch that passes all of these counts as a click;
a scanner that fetches late, slowly, and as a browser, still counts: no heuristic sees it.
"""

from __future__ import annotations

import re

# Lower-case fragments of user agents that are never a person's browser following a link.
SCANNER_AGENTS: tuple[str, ...] = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "urldefense",
    "safelinks",
    "ms-office",
    "microsoft office",
    "microsoftpreview",
    "skypeuripreview",
    "trendmicro",
    "trend micro",
    "symantec",
    "messagelabs",
    "forcepoint",
    "fireeye",
    "ironport",
    "cisco",
    "sophos",
    "bitdefender",
    "kaspersky",
    "checkpoint",
    "check point",
    "zscaler",
    "paloalto",
    "vade",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww-perl",
    "curl/",
    "wget/",
    "bot",
    "crawler",
    "spider",
    "scanner",
    "preview",
)
_AGENTS = re.compile("|".join(re.escape(fragment) for fragment in SCANNER_AGENTS))


def looks_like_scanner(method: str, user_agent: str | None) -> bool:
    """True for a ``HEAD``, a missing or blank user agent, or one naming a scanner."""
    if method.upper() == "HEAD":
        return True
    if user_agent is None or not user_agent.strip():
        return True
    return _AGENTS.search(user_agent.lower()) is not None
