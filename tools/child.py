"""`python -m tools.child <module> [args]`: run a module that dies with its launcher.

The launcher (tools.stack) starts every process through this. It asks Linux
for SIGTERM when the launching thread dies (PR_SET_PDEATHSIG), then runs the
module as `python -m <module>` would. Doing this after exec, instead of in
Popen's preexec_fn, matters: code run between fork and exec in a process with
threads (the test harness has many) can deadlock on a lock another thread
held at fork time, which hung whole test runs. A launcher that died before
the request took effect is caught by comparing the parent pid it passed in.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys

LAUNCHER_PID = "AGORA_LAUNCHER_PID"
_PR_SET_PDEATHSIG = 1


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tools.child <module> [args...]")
    launcher = int(os.environ.pop(LAUNCHER_PID, "0"))
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        sys.exit(f"prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}")
    if launcher and os.getppid() != launcher:
        sys.exit(0)  # the launcher died before we could ask: nobody wants us any more
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
