"""``python -m wanbatch.mock [options]``: the same as ``wanbatch mock``."""

from __future__ import annotations

import sys

from wanbatch.mock._cli import cli_main

raise SystemExit(cli_main(sys.argv[1:]))
