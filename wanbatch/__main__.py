"""``python -m wanbatch`` and the ``wanbatch`` command.

A Ctrl-C while the command line imports its modules (the first half second) is an interrupt
like any other: one line and exit 130, not a traceback. So the heavy imports happen here,
inside the handler, and the entry point itself imports nothing but the standard library.
"""

from __future__ import annotations

import sys

#: Exit code of an interrupted command (``ExitCode.INTERRUPTED``, without importing it).
INTERRUPTED = 130


def main() -> int:
    """Entry point of the ``wanbatch`` command; returns the exit code."""
    try:
        from wanbatch._cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("wanbatch: interrupted\n")
        return INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
