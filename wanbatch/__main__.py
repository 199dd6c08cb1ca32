"""``python -m wanbatch``: the same as the ``wanbatch`` command."""

from __future__ import annotations

from wanbatch._cli import main

raise SystemExit(main())
