"""Sending e-mails (takedown notices, warm referrals) through the helpline's SMTP server.

``GATEWAY_SMTP_URL`` names the server: ``smtp://user:password@host:587`` upgrades the connection with STARTTLS
(required: a server that does not offer it is refused, so nothing goes out in clear), ``smtps://…:465`` speaks
TLS from the start. User and password are URL-encoded in the URL. ``GATEWAY_SMTP_CA_FILE`` names a CA bundle
when the server's certificate is not signed by a public authority. aiosmtplib is the client (asyncio-native,
maintained, typed). Errors become :class:`~gateway.errors.MailError`, naming the step and never an address.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

from gateway.errors import ConfigError, MailError

TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError("GATEWAY_SMTP_URL must look like smtp://user:password@host:587")
        try:
            port = parts.port or (465 if parts.scheme == "smtps" else 587)
        except ValueError:
            raise ConfigError("GATEWAY_SMTP_URL has a bad port") from None
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname, port, parts.scheme == "smtps", username, password)


class Mailer:
    """Sends one message per call, on its own connection (a few e-mails an hour do not need a pool)."""

    def __init__(self, url: str, ca_file: str = "", timeout: float = TIMEOUT_SECONDS) -> None:
        self.server = SmtpServer.from_url(url)
        self.tls = ssl.create_default_context(cafile=ca_file or None)
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> str:
        """Hand ``message`` to the server; its Message-ID. MailError when the server did not accept it."""
        server = self.server
        try:
            await aiosmtplib.send(
                message, hostname=server.host, port=server.port, username=server.username,
                password=server.password, use_tls=server.implicit_tls, start_tls=not server.implicit_tls,
                tls_context=self.tls, timeout=self.timeout,
            )  # fmt: skip
        except aiosmtplib.SMTPException as exc:
            raise MailError(f"the SMTP server refused the e-mail ({type(exc).__name__})") from None
        except (OSError, ssl.SSLError) as exc:
            raise MailError(f"the SMTP server could not be reached ({type(exc).__name__})") from None
        return str(message["Message-ID"] or "")
