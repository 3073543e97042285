"""Token budgets: how many tokens a session's history costs a model, before it is sent.

``tokens.py`` counts what a model is sent of each item (:class:`~.tokens.TokenCounter`:
``tiktoken``'s ``o200k_base`` when it can be loaded, else a documented estimate) and holds
the calibration math that scales those counts by what the server reported for earlier
requests, so a server that counts differently is still respected. Nothing here reads or
writes a database.
"""
