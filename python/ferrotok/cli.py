"""Entry point of the ``ferrotok`` command (the work is done in Rust)."""

from __future__ import annotations

import signal
import sys

from ._core import _cli_main


def main(argv: list[str] | None = None) -> int:
    """Runs ``ferrotok`` with ``argv`` (default: ``sys.argv[1:]``) and exits with its status."""
    # A command-line tool should die on Ctrl-C like any other; the Rust side holds no Python
    # state that needs unwinding.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    code = _cli_main(sys.argv[1:] if argv is None else list(argv))
    raise SystemExit(code)


if __name__ == "__main__":
    main()
