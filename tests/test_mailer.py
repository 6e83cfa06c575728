"""The SMTP client against real servers on 127.0.0.1: STARTTLS and authentication, never in clear."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from gateway.errors import ConfigError, MailError
from gateway.mailer import Mailer, SmtpServer
from gateway.notices.compose import plain_email
from tests.notices.smtp_server import PASSWORD, USER, Inbox, free_port
from tests.notices.smtp_server import SmtpServer as LocalSmtp


def message() -> object:
    return plain_email("notices@helpline.example", "tf@platform.example", "sujet", "texte")


async def test_sends_through_starttls_with_login(tmp_path: Path) -> None:
    server = LocalSmtp(tmp_path)
    server.start()
    try:
        message_id = await Mailer(server.url, str(server.cert)).send(message())  # type: ignore[arg-type]
        (received,) = await server.inbox.wait(1)
    finally:
        server.stop()
    assert received["Message-ID"] == message_id and message_id.endswith("@helpline.example>")


async def test_a_wrong_password_is_a_mail_error(tmp_path: Path) -> None:
    server = LocalSmtp(tmp_path)
    server.start()
    try:
        url = server.url.replace(PASSWORD.replace(":", "%3A"), "wrong")
        with pytest.raises(MailError, match="refused"):
            await Mailer(url, str(server.cert)).send(message())  # type: ignore[arg-type]
    finally:
        server.stop()
    assert server.inbox.received == []


async def test_a_server_without_starttls_gets_nothing(tmp_path: Path) -> None:
    inbox, port = Inbox(), free_port()
    plain = Controller(inbox, hostname="127.0.0.1", port=port)  # no TLS offered: the password would go in clear
    plain.start()
    try:
        with pytest.raises(MailError):
            await Mailer(f"smtp://{USER}:x@127.0.0.1:{port}").send(message())  # type: ignore[arg-type]
    finally:
        plain.stop()
    assert inbox.received == []


async def test_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    server = LocalSmtp(tmp_path)
    server.start()
    try:
        with pytest.raises(MailError, match="reached"):
            await Mailer(server.url).send(message())  # type: ignore[arg-type]  (the system CAs do not know it)
    finally:
        server.stop()
    assert server.inbox.received == []


def test_the_url_is_parsed_and_checked() -> None:
    found = SmtpServer.from_url("smtp://us%40er:p%3Ass@mail.example:2525")
    assert (found.host, found.port, found.implicit_tls, found.username, found.password) == (
        "mail.example", 2525, False, "us@er", "p:ss")  # fmt: skip
    assert SmtpServer.from_url("smtps://mail.example").port == 465
    assert "p:ss" not in repr(found)
    for bad in ("http://mail.example", "smtp://", "smtp://mail.example:notaport"):
        with pytest.raises(ConfigError):
            SmtpServer.from_url(bad)
    assert isinstance(Mailer("smtp://mail.example").tls, ssl.SSLContext)
