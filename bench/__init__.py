"""Benchmarks: history_store side by side with the Agents SDK's sessions and a raw sqlite3 floor.

Run with ``python -m bench`` (``make bench``); ``python -m bench --quick`` is a small smoke run.
Every timing is taken in small interleaved chunks and reported as medians and ratios, because
the machines this runs on are shared and noisy.
"""
