"""Signed mail links (consumers/mail/links.py): what verifies, and the one refusal of the rest;
and the scanner heuristics of the request alone (consumers/mail/scanners.py)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from consumers.mail import links
from consumers.mail.scanners import looks_like_scanner
from consumers.settings import MailSettings
from contracts.errors import NotFound

SECRET = "test-only-link-secret-of-32-characters!"  # noqa: S105
CLICK = links.LinkPayload("c", 4242, "digest:4242:daily:2026-11-30", 77)
UNSUBSCRIBE = links.LinkPayload("u", 4242, "alert:4242:77:published:0:0")


def _refused(token: str, kind: links.LinkKind = "c", secret: str = SECRET) -> str:
    with pytest.raises(NotFound) as refused:
        links.verify(token, kind, secret)
    return refused.value.detail


def test_round_trip_of_every_kind() -> None:
    for payload in (CLICK, UNSUBSCRIBE, links.LinkPayload("o", 1, "k")):
        token = links.sign(payload, SECRET)
        assert token.startswith("v1.")
        assert all(c.isalnum() or c in "._-" for c in token)  # URL-safe as it is
        assert links.verify(token, payload.kind, SECRET) == payload
        assert links.sign(payload, SECRET) == token  # deterministic


def test_every_wrong_part_gets_the_same_answer() -> None:
    token = links.sign(CLICK, SECRET)
    version, body, mac = token.split(".")
    other_body = base64.urlsafe_b64encode(b"c.4242.78.digest:4242:daily:2026-11-30").rstrip(b"=")
    flipped_mac = mac[:-2] + ("AA" if mac[-2:] != "AA" else "BA")
    answers = {
        "wrong secret": _refused(token, secret=SECRET + "x"),
        "wrong kind": _refused(token, "u"),
        "other project, same MAC": _refused(f"{version}.{other_body.decode()}.{mac}"),
        "tampered MAC": _refused(f"{version}.{body}.{flipped_mac}"),
        "truncated MAC": _refused(f"{version}.{body}.{mac[:10]}"),
        "unknown version": _refused(f"v2.{body}.{mac}"),
        "no version": _refused(f"{body}.{mac}"),
        "not base64": _refused(f"{version}.{body}!.{mac}"),
        "padding": _refused(f"{version}.{body}==.{mac}"),
        "empty": _refused(""),
        "garbage": _refused("n'importe quoi"),
        "too long": _refused(token + "A" * 400),
        "non-ASCII": _refused(token.replace("v1", "v١")),
    }
    assert set(answers.values()) == {"ce lien n'est pas valide"}


def test_a_token_of_one_kind_is_refused_as_another() -> None:
    for kind in ("o", "u"):
        _refused(links.sign(CLICK, SECRET), kind)  # type: ignore[arg-type]
    _refused(links.sign(UNSUBSCRIBE, SECRET), "c")


def test_what_a_token_cannot_carry() -> None:
    for bad in (
        links.LinkPayload("c", 0, "k", 1),
        links.LinkPayload("c", 1, "k", 2**63),
        links.LinkPayload("c", 1, "k"),  # a click without its project
        links.LinkPayload("u", 1, "k", 5),  # a project on an unsubscribe link
        links.LinkPayload("u", 1, ""),
        links.LinkPayload("u", 1, "clé"),
        links.LinkPayload("u", 1, "a b"),
        links.LinkPayload("u", 1, "k" * 201),
    ):
        with pytest.raises(ValueError):
            links.sign(bad, SECRET)


def test_the_redirect_is_built_from_the_project_id_only() -> None:
    assert links.project_url("https://p.example", 77) == "https://p.example/map?projet=77"
    # No URL in a signed payload reaches the target: it is a function of an int.
    evil = links.LinkPayload("c", 1, "https://evil.example/", 5)
    payload = links.verify(links.sign(evil, SECRET), "c", SECRET)
    assert payload.project_id == 5
    assert links.project_url("https://p.example", payload.project_id) == (
        "https://p.example/map?projet=5"
    )


@given(
    user=st.integers(1, 2**63 - 1),
    project=st.integers(1, 2**63 - 1),
    key=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=200),
    position=st.integers(0, 10_000),
    replacement=st.sampled_from("AQgw_-.0"),
)
def test_any_one_character_changed_is_refused_or_identical(
    user: int, project: int, key: str, position: int, replacement: str
) -> None:
    payload = links.LinkPayload("c", user, key, project)
    token = links.sign(payload, SECRET)
    assert links.verify(token, "c", SECRET) == payload
    i = position % len(token)
    changed = token[:i] + replacement + token[i + 1 :]
    if changed == token:
        return
    try:
        found = links.verify(changed, "c", SECRET)
    except NotFound:
        return
    # base64's last character may carry unused bits: the same bytes, the same payload.
    assert found == payload


@pytest.mark.parametrize(
    ("method", "agent", "scanner"),
    [
        ("GET", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", False),
        ("GET", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1", False),
        ("HEAD", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", True),
        ("GET", None, True),
        ("GET", "  ", True),
        ("GET", "Mozilla/5.0 (compatible; Barracuda Sentinel)", True),
        ("GET", "Mimecast-Url-Protect/1.0", True),
        ("GET", "Mozilla/5.0 (Windows NT 10.0) HeadlessChrome/120.0 Safari/537.36", True),
        ("GET", "python-requests/2.32", True),
        ("GET", "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0)", True),
        ("GET", "Mozilla/5.0 (compatible; bingbot/2.0)", True),
    ],
)
def test_scanners_by_the_request(method: str, agent: str | None, scanner: bool) -> None:
    assert looks_like_scanner(method, agent) is scanner


def test_mail_settings_refuse_what_would_break_mails() -> None:
    with pytest.raises(ValidationError, match="GEO_ENGINE_LINK_SECRET must be set"):
        MailSettings(environment="production")
    with pytest.raises(ValidationError, match="at least 32 characters"):
        MailSettings(environment="production", link_secret=SecretStr("short"))
    with pytest.raises(ValidationError, match="https:// URL in production"):
        MailSettings(environment="production", link_secret=SecretStr(SECRET))
    MailSettings(
        environment="production",
        link_secret=SecretStr(SECRET),
        public_url="https://participation.example.fr",
    )
    for template in ("citoyen@example.fr", "{user_id}-{user_id}@x.fr", "{user_id}-{other}@x.fr"):
        with pytest.raises(ValidationError, match="recipient_template"):
            MailSettings(recipient_template=template)
    with pytest.raises(ValidationError, match="http"):
        MailSettings(public_url="participation.example.fr")
    assert MailSettings(public_url="https://p.example/").public_url == "https://p.example"
