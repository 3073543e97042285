"""The runner layer: ``Runner``, the server-state guard, ``install()``, and what decides
which API an agent's model speaks. The public names are exported from ``history_store``.
"""
