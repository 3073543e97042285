"""``history-store db ...``, ``migrate-from``, ``export-to`` and ``copy`` (schema moves)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the schema-moving commands to the ``history-store`` parser."""
