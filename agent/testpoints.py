"""Named points of an action where a test can freeze the agent to kill it (I/O: env, files).

With `FLINK_GITOPS_PAUSE_AT=<point>` and `FLINK_GITOPS_PAUSE_FILE=<path>` in its environment, the
agent writes `<path>` when it reaches that point and then waits until the file is deleted, so
that a test can SIGKILL (a crash) or SIGTERM (a shutdown) the real process exactly there. Without
them (always, outside tests) a point does nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

SAVEPOINT_TRIGGERED = "savepoint-triggered"   # stop-with-savepoint sent, not yet complete
OLD_JOB_STOPPED = "old-job-stopped"           # savepoint complete, old job ended
NEW_JOB_SUBMITTED = "new-job-submitted"       # run request accepted, job not yet running
BEFORE_STATUS_PUSH = "before-status-push"     # Flink done, status branch not yet written
POINTS = (SAVEPOINT_TRIGGERED, OLD_JOB_STOPPED, NEW_JOB_SUBMITTED, BEFORE_STATUS_PUSH)


def reached(point: str) -> None:
    if os.environ.get("FLINK_GITOPS_PAUSE_AT") != point:
        return
    pause = Path(os.environ["FLINK_GITOPS_PAUSE_FILE"])
    pause.write_text(f"{os.getpid()} {point}\n")
    while pause.exists():
        time.sleep(0.05)
