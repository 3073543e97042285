"""history_store's web viewer: sessions, one session's turns and tool calls, full-text
search, each page's data as JSON.

``create_app(store)`` returns a read-only Starlette (ASGI) app; ``history-store serve``
runs it with uvicorn, and any ASGI application can mount it (docs/viewer.md). It needs
the ``viewer`` extra: ``pip install "history-store[viewer]"``.
"""

try:
    from .app import create_app
except ModuleNotFoundError as exc:
    if exc.name not in ("jinja2", "markupsafe", "starlette"):
        raise
    raise ModuleNotFoundError(
        f"history_store.viewer needs the viewer extra ({exc.name} is missing): "
        'pip install "history-store[viewer]"',
        name=exc.name,
    ) from exc

__all__ = ["create_app"]

create_app.__module__ = "history_store.viewer"
