"""PyFlink for the Python-job tests: a virtual environment with `apache-flink` of the installed
Flink's version, in tests/.pyflink/<version>/, made the first time it is needed (about 75 s and
850 MB, in a folder moved into place whole: an interrupted install leaves none). Its interpreter
is what the local target runs Python jobs with (FLINK_GITOPS_PYTHON): PyFlink's dependencies
(Apache Beam, an older protobuf) cannot share one environment with the test tools' own.
`python3 tests/pyflink_env.py` makes it ahead (CI does) and prints the interpreter.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

PYFLINK_HOME = Path(__file__).resolve().parent / ".pyflink"
INSTALL_TIMEOUT_S = 900   # pip's install of apache-flink and its dependencies


def pyflink_python() -> Path:
    """The interpreter of the environment with PyFlink of the installed Flink, made first when
    it is not there."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from agent.flink.local import flink_version
    version = flink_version()
    home = PYFLINK_HOME / version
    python = home / "bin" / "python"
    if python.exists():
        return python
    PYFLINK_HOME.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="partial-", dir=PYFLINK_HOME))
    try:
        venv.EnvBuilder(with_pip=True).create(partial)
        subprocess.run([str(partial / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", f"apache-flink=={version}"],
                       check=True, timeout=INSTALL_TIMEOUT_S, stdin=subprocess.DEVNULL)
        if not python.exists():   # (else another run made it meanwhile; the interpreter
            partial.rename(home)  # works moved, only pip's own scripts would not)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return python


if __name__ == "__main__":
    print(pyflink_python(), file=sys.stdout)
