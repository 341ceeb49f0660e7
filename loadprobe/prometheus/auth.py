"""Credentials and the server URL for the Prometheus HTTP API.

Credentials come only from the environment, so they never appear on a command
line, in shell history, in a log line or in the store:

- ``CAPPLAN_PROM_TOKEN``: sent as ``Authorization: Bearer <token>``.
- ``CAPPLAN_PROM_USER`` and ``CAPPLAN_PROM_PASSWORD``: HTTP basic auth.

Giving both kinds is rejected because only one ``Authorization`` header can
be sent. A URL with ``user:password@`` in it is rejected for the same reason
the environment is used: the URL is logged and stored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from capplan.errors import ConfigError

__all__ = [
    "TOKEN_ENV",
    "USER_ENV",
    "PASSWORD_ENV",
    "PrometheusAuth",
    "auth_from_environment",
    "normalise_prometheus_url",
    "parse_header",
]

TOKEN_ENV = "CAPPLAN_PROM_TOKEN"
USER_ENV = "CAPPLAN_PROM_USER"
PASSWORD_ENV = "CAPPLAN_PROM_PASSWORD"

# Headers that carry credentials; --header must not be used to pass them.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


@dataclass(frozen=True)
class PrometheusAuth:
    """HTTP credentials and extra headers for one Prometheus server.

    ``repr`` hides every value so that a stray log line or traceback cannot
    print a secret.
    """

    bearer_token: str | None = field(default=None, repr=False)
    basic: tuple[str, str] | None = field(default=None, repr=False)
    extra_headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        """The kind of credentials: ``bearer``, ``basic`` or ``none``."""
        if self.bearer_token:
            return "bearer"
        if self.basic:
            return "basic"
        return "none"

    def headers(self) -> dict[str, str]:
        """Return the HTTP headers to send with every request."""
        headers = dict(self.extra_headers)
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        return headers

    def secrets(self) -> list[str]:
        """Return the secret strings, so messages can be scrubbed of them."""
        values = []
        if self.bearer_token:
            values.append(self.bearer_token)
        if self.basic:
            values.append(self.basic[1])
        return [value for value in values if value]

    def redact(self, text: str) -> str:
        """Replace every secret value in ``text`` with ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text


def auth_from_environment(
    environ: Mapping[str, str] | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> PrometheusAuth:
    """Read the Prometheus credentials from the environment.

    Raises ConfigError when both a token and a user are set, or when only
    one of user and password is set.
    """
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip() or None
    user = env.get(USER_ENV, "")
    password = env.get(PASSWORD_ENV, "")
    if token and (user or password):
        raise ConfigError(
            f"both {TOKEN_ENV} and {USER_ENV}/{PASSWORD_ENV} are set; unset one of them, "
            "because a request can carry only one Authorization header"
        )
    if bool(user) != bool(password):
        missing = PASSWORD_ENV if user else USER_ENV
        raise ConfigError(f"basic auth needs {USER_ENV} and {PASSWORD_ENV}; {missing} is not set")
    headers = dict(extra_headers or {})
    for name in headers:
        if name.lower() in _CREDENTIAL_HEADERS:
            raise ConfigError(
                f"--header {name}: credentials must not be given on the command line; "
                f"set {TOKEN_ENV}, or {USER_ENV} and {PASSWORD_ENV}, in the environment"
            )
    return PrometheusAuth(
        bearer_token=token,
        basic=(user, password) if user else None,
        extra_headers=headers,
    )


def normalise_prometheus_url(url: str) -> str:
    """Check the base URL of a Prometheus API and return it without a trailing slash.

    The URL is the server root (``http://host:9090``) or the prefix under
    which Thanos, Mimir or VictoriaMetrics serve ``/api/v1`` (such as
    ``http://mimir:8080/prometheus``).
    """
    text = (url or "").strip()
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"--prometheus {url!r} is not an http(s) URL; give one such as http://127.0.0.1:9090")
    if parsed.username or parsed.password:
        raise ConfigError(
            f"--prometheus URL contains credentials; remove them from the URL and set {TOKEN_ENV}, "
            f"or {USER_ENV} and {PASSWORD_ENV}, in the environment instead"
        )
    if parsed.query or parsed.fragment:
        raise ConfigError(f"--prometheus {url!r} has a query string or fragment; give only the base URL, such as http://127.0.0.1:9090")
    path = parsed.path.rstrip("/")
    if path.endswith("/api/v1"):
        raise ConfigError(
            f"--prometheus {url!r} ends in /api/v1; give the base URL without it, such as "
            f"{parsed.scheme}://{parsed.netloc}{path[: -len('/api/v1')]}"
        )
    return f"{parsed.scheme}://{parsed.netloc}{path}"


def parse_header(text: str) -> tuple[str, str]:
    """Split a ``Name: value`` header given with ``--header``."""
    name, separator, value = text.partition(":")
    name = name.strip()
    if not separator or not name or any(ch.isspace() for ch in name):
        raise ConfigError(f"--header {text!r} is not a 'Name: value' header; give one such as 'X-Scope-OrgID: team-a'")
    return name, value.strip()
