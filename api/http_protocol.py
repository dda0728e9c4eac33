"""uvicorn's httptools protocol with the two limits uvicorn does not offer for it: a header size cap and a
header read timeout.

uvicorn bounds header size only on h11 (``h11_max_incomplete_event_size``; httptools' own buffer limit is
not configurable: github.com/Kludex/uvicorn/issues/157), and none of its timeouts covers a request being
received: ``timeout_keep_alive`` only runs between requests and is reset by every byte
(github.com/xorbitsai/inference/pull/5213 describes the same gap). A client that opens a connection and
sends nothing, or trickles a header, holds it forever, and an unfinished 20 MB header is buffered whole.

``BoundedHttpToolsProtocol`` closes a connection whose request line and headers are not complete within
``header_timeout_s`` of its first byte (or of the connection opening), and answers 431 and closes once they
pass ``max_header_bytes``. The body's deadline is the middleware's (``api.middleware``): it runs once the
headers are in, and only for callers with a valid key.

The limits come from settings (``api_max_header_bytes``, ``api_header_timeout_s``), read once per worker
process: uvicorn builds the protocol itself, in each worker, from a class it pickles by name.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("api.http")

_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\nconnection: close\r\n"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_header_bytes: int | None = None  # from settings on the first connection (see ``_limits``)
    header_timeout_s: float = 10.0

    # counters of this worker process (every connection's protocol object shares them)
    closed_slow_headers: int = 0
    closed_large_headers: int = 0

    @classmethod
    def _limits(cls) -> None:
        from fraud_detection.settings import get_settings

        s = get_settings()
        cls.max_header_bytes, cls.header_timeout_s = s.api_max_header_bytes, s.api_header_timeout_s

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if self.max_header_bytes is None:
            self._limits()
        super().connection_made(transport)
        self._awaiting_headers = True
        self._header_bytes = 0
        self._completed_in_read = False
        self._header_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout_s, self._header_timeout
        )

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers and self._header_timer is None:  # first byte of a keep-alive request
            self._header_bytes = 0
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)
        self._completed_in_read = False
        super().data_received(data)
        # Counted after parsing: one read may carry the end of the headers and the start of the body, or a
        # whole request (headers and a large body); a read in which a request completed is not counted, as
        # its bytes are that request's, whatever follows it. Until the headers complete, what is buffered
        # is at most the cap plus one read (<= 256 KiB).
        if self._awaiting_headers and not self._completed_in_read and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                BoundedHttpToolsProtocol.closed_large_headers += 1
                body = b'{"detail":"request line and headers larger than %d bytes"}' % self.max_header_bytes
                self.transport.write(_431 + b"content-length: %d\r\n\r\n" % len(body) + body)
                self._close()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True  # the next bytes start the next request (timer armed on arrival)
        self._header_bytes = 0
        self._completed_in_read = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
            BoundedHttpToolsProtocol.closed_slow_headers += 1
            self._close()

    def _close(self) -> None:
        self._cancel_header_timer()
        self.transport.close()
