"""The French pages a person reaches from a mail's links (unsubscribe, a bad link)."""

from __future__ import annotations

from collections.abc import Sequence

from consumers.mail.compose import environment

# The pages load nothing, run no script, and post only to the engine itself.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def render_page(
    title: str,
    paragraphs: Sequence[str],
    home: str,
    *,
    action: str | None = None,
    button: str = "",
) -> str:
    """An HTML page (autoescaped): a title, paragraphs, and, with ``action``, a form POSTing
    to that path whose one button says ``button``."""
    return (
        environment()
        .get_template("page.html")
        .render(title=title, paragraphs=paragraphs, home=home, action=action, button=button)
    )
