"""The access log: method, path, status, size and duration, and nothing that identifies anyone.

aiohttp's default line carries the client's IP address and user agent (identifying a young person), and the
query string (where Meta's webhook handshake puts the verify token). This one keeps only the path.
"""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class PrivateAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '"%s %s" %d %s %.3fs', request.method, request.rel_url.path, response.status,
            response.body_length, time,
        )  # fmt: skip

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(20)  # INFO
