"""What the ibc_core command lines share."""
from __future__ import annotations

import sys
from typing import Callable


def report_errors(prog: str, errors: tuple[type[Exception], ...], work: Callable[[], str]) -> int:
    """Runs a command's work and prints the summary line it returns; exit status 0. One of
    `errors` (the user's mistake: a bad config, a missing dataset) is printed as one
    `prog: error: ...` line on stderr instead of a traceback, with argparse's usage status 2."""
    try:
        summary = work()
    except errors as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0
