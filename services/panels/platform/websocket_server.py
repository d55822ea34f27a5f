"""uvicorn's WebSocket protocol with compression contexts kept per message, not per socket.

uvicorn negotiates `permessage-deflate` with a compressor and a decompressor that live as long
as each socket (about 45 KB of zlib state together, with its window of 2^12 and `memLevel` 5).
With a thousand sockets open that was most of what they added to a worker's memory. Here the
server asks for `no_context_takeover` both ways (RFC 7692 lets it add both to its answer
whatever the client offered): each message is compressed on its own, its zlib state made and
dropped with it. Messages are small JSON changes, so they compress nearly as well alone.
"""

from __future__ import annotations

import logging
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.server import ServerProtocol


class PerMessageDeflateProtocol(WebSocketsSansIOProtocol):
    """Pass as uvicorn's `ws` (see the module docstring)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        if config.ws_per_message_deflate:
            self.conn = ServerProtocol(
                extensions=[
                    ServerPerMessageDeflateFactory(
                        server_no_context_takeover=True,
                        client_no_context_takeover=True,
                        server_max_window_bits=12,
                        client_max_window_bits=12,
                        compress_settings={"memLevel": 5},
                    )
                ],
                max_size=config.ws_max_size,
                logger=logging.getLogger("uvicorn.error"),
            )
