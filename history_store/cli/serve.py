"""``history-store serve``: the read-only web viewer (``history_store.viewer``) on uvicorn.

The command checks what the app cannot: that an address other than loopback comes with a
token, that the port is free, and that the database opens read-only; then it serves until
Ctrl-C or SIGTERM, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from .._engine import redact
from ..errors import ConfigurationError
from ..tools._open import database_url
from ._command import add_command
from ._output import print_json, print_line

TOKEN_ENV = "HISTORY_STORE_SERVE_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700
# The Host headers a browser sends to a viewer on loopback; anything else is a page that
# reached it through DNS rebinding.
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and the loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
        listener = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}: {exc}; check --host") from exc
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as exc:
        listener.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port "
            "(--port 0 takes any free one)"
        ) from exc
    return listener


def _address(listener: socket.socket, token: str | None) -> str:
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    query = f"?token={quote(token, safe='')}" if token else ""
    return f"http://{shown}:{port}/{query}"


def _server(app: Any) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, stopped by SIGINT or SIGTERM as a normal end: it does not raise
        the signal again once it has shut down, so the command exits 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            loop = asyncio.get_running_loop()
            stops = (signal.SIGINT, signal.SIGTERM)
            for stop in stops:
                loop.add_signal_handler(stop, self.handle_exit, stop, None)
            try:
                yield
            finally:
                for stop in stops:
                    loop.remove_signal_handler(stop)

    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", server_header=False, proxy_headers=False
    )
    return Server(config)


async def _serve(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV) or None
    loopback = is_loopback(args.host)
    if not loopback and token is None:
        raise ConfigurationError(
            f"serving on {args.host} would show the history to anyone who can reach it: "
            f"pass --token TOKEN (or set ${TOKEN_ENV}), or keep the default --host {DEFAULT_HOST}"
        )
    try:
        import uvicorn  # noqa: F401  (checked here, used by _server)

        from ..viewer import create_app
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"the viewer needs the viewer extra ({exc.name} is missing): "
            'pip install "history-store[viewer]"'
        ) from exc
    allowed = [*_LOOPBACK_NAMES, args.host] if loopback else None
    app = create_app(args.url, token=token, allowed_hosts=allowed)
    listener = _listen(args.host, args.port)
    with contextlib.closing(listener):
        # The database is opened here, before the first request: a missing file or an old
        # schema is an error now, not a page later.
        async with app.router.lifespan_context(app):
            address = _address(listener, token)
            database = redact(database_url(args.url))
            if args.json:
                print_json({"url": address, "database": database, "read_only": True})
            else:
                print_line(f"serving {database} read-only at {address}")
                print_line("press Ctrl-C to stop")
            sys.stdout.flush()
            await _server(app).serve(sockets=[listener])
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``serve`` to ``history-store``."""
    p = add_command(
        commands,
        common,
        "serve",
        "browse the history in a web browser",
        _serve,
        example_line="history-store --url sqlite:///history.db serve --port 8700",
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}; any other needs --token)",
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )
    p.add_argument(
        "--token",
        help=f"every request must carry this token (default: ${TOKEN_ENV})",
    )
