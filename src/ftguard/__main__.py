"""``python -m ftguard``: the CLI."""

from __future__ import annotations

import sys

from ftguard.cli import main

sys.exit(main())
