"""User errors and the one grammar every message follows.

A `UserError` is a mistake in the data or params, not a bug: the stage runner prints its
message without a traceback and exits with status 2. Messages read
`<where>: <rule>. Got <value>. <fix>` so a user can act on any of them the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem the user can fix in params.yaml or the input data."""


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def problem(where: str, rule: str, got: object = None, fix: str = "") -> str:
    """Format one problem in the project's grammar."""
    text = f"{where}: {rule}."
    if got is not None:
        text += f" Got {got!r}." if isinstance(got, str) else f" Got {got}."
    if fix:
        text += f" {fix.rstrip('.')}."
    return text


def one_of(where: str, value: object, choices: Iterable[str]) -> str:
    """'<where>: must be one of a, b, c. Got 'x'. Did you mean 'y'?'"""
    choices = list(choices)
    return problem(where, f"must be one of {', '.join(choices)}", value) + did_you_mean(value, choices)


def redact(url: str | None) -> str | None:
    """A storage or tracking URL without its password, fit for logs, messages and output files."""
    if url is None or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
