"""Start `reminder-sync sync` processes without paying Python's start-up each time.

Run as `python -m tests.reliability.sync_forker`: it imports the CLI and what a sync needs once,
then, for each JSON line on stdin (`{"env": {...}, "stderr": "/path"}`), forks a child that runs
`reminder-sync sync` exactly as `python -m tui.cli sync` does (click's `main`, same exit codes,
a traceback on stderr for an uncaught exception) with that environment and stderr. Each child is
a process of its own: SIGKILL and `os._exit` end it alone, and what it leaves on disk is all the
next one sees. For each child this prints `{"pid": N}` at once and `{"exit": code}` when it has
ended (code < 0: killed by that signal). A child is reaped only when the next line (or the end of
stdin) arrives, so until then its pid cannot be reused: signalling it is always safe.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

# Imported once, here, instead of in every child (about half a second each).
import keyring  # noqa: F401

import sync.connections
import sync.connectors.salesconnect
import sync.connectors.salesforce
import sync.engine
import sync.secrets  # noqa: F401
import tui.cli


def _child(env: dict[str, str], stderr: str) -> None:
    """In the forked child: become `reminder-sync sync`; never returns."""
    code = 1
    try:
        os.environ.clear()
        os.environ.update(env)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        err = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(err, 2)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        try:
            tui.cli.main(["sync"], prog_name="reminder-sync")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _exit_code(pid: int) -> int:
    """Wait for the child to end, leaving it unreaped; its exit code (-N: killed by signal N)."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    assert info is not None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def main() -> None:
    last = None
    for line in sys.stdin:
        if last is not None:
            os.waitpid(last, 0)
        request = json.loads(line)
        last = pid = os.fork()
        if pid == 0:
            _child(request["env"], request["stderr"])
        print(json.dumps({"pid": pid}), flush=True)
        print(json.dumps({"exit": _exit_code(pid)}), flush=True)
    if last is not None:
        os.waitpid(last, 0)


if __name__ == "__main__":
    main()
