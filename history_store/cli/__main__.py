"""``python -m history_store.cli``: the same as the ``history-store`` command."""

import sys

from . import main

sys.exit(main())
