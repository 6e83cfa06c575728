"""The access log: method, path, status, size and duration, and nothing that identifies anyone.

aiohttp's default line carries the client's IP address and user agent (identifying a young person), and the
query string (where Meta's webhook handshake puts the verify token). This one keeps only the path.

aiohttp's server logger (``aiohttp.server``) answers a request it cannot parse (a bad header line, a bad chunk, a
method that is not one) with 400 itself and says "Error handling request from <the client's address>" with a
traceback whose message quotes the offending bytes, at ERROR (DEBUG for a bad method): :class:`PrivateServerLog`
says such a request by its class only, at INFO, and takes the address out of that line's other uses.

aiohttp's WebSocket logger (``aiohttp.websocket``) says, at WARNING, "<the client's address>: Client protocols [...]
don't overlap server-known ones" for any socket whose handshake names sub-protocols (``Sec-WebSocket-Protocol``,
which any client may send: the gateway's sockets speak none): :class:`PrivateSocketLog` makes it one DEBUG line
naming neither (until 2026-12-08 the address and the client's words went to the log at will).
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

SERVER_ERROR = "Error handling request"  # aiohttp's own words, followed by " from %s" and the client's address
SOCKET_PROTOCOLS = "Client protocols"  # aiohttp.websocket's words, after "%s: " and the client's address


class PrivateAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """The path as the client sent it, percent-encoded: until 2026-12-07 it was decoded, and a path with ``%0A``
        (or ``%1B``, a terminal escape) wrote a line of the client's choosing into the log (a forged ERROR)."""
        self.logger.info(
            '"%s %s" %d %s %.3fs', request.method, request.rel_url.raw_path, response.status,
            response.body_length, time,
        )  # fmt: skip

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(20)  # INFO


class PrivateServerLog(logging.Filter):
    """On ``aiohttp.server``: a malformed request is one INFO line by class (never its bytes, never the address);
    any other error of that line keeps its level and traceback, without the address."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(SERVER_ERROR):
            return True
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            record.msg, record.args = SERVER_ERROR, ()
            return True
        record.levelno = min(record.levelno, logging.INFO)
        record.levelname = logging.getLevelName(record.levelno)
        record.msg, record.args = "a malformed HTTP request refused (%s)", (type(error).__name__,)
        record.exc_info, record.exc_text = None, None
        return logging.getLogger(record.name).isEnabledFor(record.levelno)


class PrivateSocketLog(logging.Filter):
    """On ``aiohttp.websocket``: a handshake's sub-protocols the gateway does not speak are one DEBUG line, without
    the client's address or the protocols it named (aiohttp's WARNING quoted both); its other lines as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if SOCKET_PROTOCOLS not in str(record.msg):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        record.msg, record.args = "a web socket named sub-protocols the gateway does not speak: opened without one", ()
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


# Library loggers that log, below these levels, URLs with tokens, message contents, or (Pillow) every EXIF tag of a
# photo with its value (who took it, where); python-telegram-bot logs an answer it cannot read as JSON whole, at
# ERROR (a proxy's page may quote the URL, so the bot's token): every failure of its calls reaches the Telegram
# adapter as an exception, told there. httpcore (under httpx) writes each answer's headers at DEBUG, and a proxy's
# redirect names the URL asked (``Location: …/bot<token>/getMe``): quieted too since 2026-12-08 (httpx alone before).
QUIETED = {
    "httpx": logging.WARNING, "httpcore": logging.WARNING, "twilio": logging.WARNING, "PIL": logging.WARNING,
    "telegram": logging.CRITICAL,
}  # fmt: skip


def private_logging() -> None:
    """Set the library loggers that would log identifying data (:data:`QUIETED`, never lower than the root's level)
    and install the filters that say aiohttp's lines about a client without its address or its bytes
    (:class:`PrivateServerLog`, :class:`PrivateSocketLog`). Called by every ``gateway`` command (``cli.main``, since
    2026-12-08), again by ``gateway serve`` once logging is configured; any other way of serving
    :func:`gateway.app.create_app` should call it too. Until 2026-12-08 these lines lived in ``gateway serve``
    alone, and the tests copied them. The access lines need no call: the app names
    :class:`PrivateAccessLogger` itself (``handler_args``, since 2026-12-08), whatever runner serves it."""
    for name, level in QUIETED.items():
        logging.getLogger(name).setLevel(max(level, logging.getLogger().level))
    server, socket = logging.getLogger("aiohttp.server"), logging.getLogger("aiohttp.websocket")
    if not any(isinstance(f, PrivateServerLog) for f in server.filters):
        server.addFilter(PrivateServerLog())
    if not any(isinstance(f, PrivateSocketLog) for f in socket.filters):
        socket.addFilter(PrivateSocketLog())
