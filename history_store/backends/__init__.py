"""Storage backends: where a session's items are written and read.

``base.py`` states the contract every backend implements; each other module is one backend
and depends only on ``base`` (and the package's private helpers): ``sqlite.py`` (an SQLite
file through the stdlib driver, with ``sqlite_fts.py`` for its full-text index),
``postgres.py`` (asyncpg) and ``core.py`` (SQLAlchemy Core, for in-memory SQLite).
"""
