"""The tools over a history database: inspection, read-only SQL, export and import,
maintenance, the SDK's session tables, copy between databases, and ``chat``. Each public
function here backs one ``history-store`` command and is exported from ``history_store``.
"""
