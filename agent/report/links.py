"""Where people click from the status branch: a job's page in the Flink web UI of its target
(pure).

A target's web UI is its `flink.uiUrl`, else its `flink.url` (the REST endpoint serves the UI
too), else, for a `local` target, the agent's own machine. A link never carries a secret: an
address holding a secret reference (`${VAR}`) gets no link, and credentials, query and fragment
are dropped from the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

from agent.model.spec import DeploymentTarget

# the job's page in the web UI of Flink 1.20 and 2.x; a finished job's redirects to its
# `completed` page, one the JobManager forgot to the list of running jobs
JOB_PAGE = "{base}/#/job/running/{job_id}/overview"
LOCAL_UI = "http://localhost:{port}"   # a `local` target: the web UI on the agent's machine
MAX_UI_BASE = 160    # characters of an address linked to (a table cell holds 300: `cells.cell`)


def ui_bases(targets: Mapping[str, DeploymentTarget]) -> dict[str, str]:
    """Target name -> the base address of its web UI, for the targets that have a safe one."""
    bases = {name: ui_base(target) for name, target in targets.items()}
    return {name: base for name, base in bases.items() if base is not None}


def ui_base(target: DeploymentTarget) -> str | None:
    """The target's web UI address without credentials, query or fragment; None when it holds a
    secret reference, is no http(s) address or is longer than MAX_UI_BASE."""
    spec = target.spec
    if spec.cluster_per_deployment:   # (a port per cluster)
        return None
    if spec.local is not None:
        return LOCAL_UI.format(port=spec.local.port)
    address = spec.flink.ui_url or spec.flink.url
    if "${" in address or re.search(r"\s", address):
        return None
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    base = urlunsplit((parts.scheme, host + port, parts.path.rstrip("/"), "", ""))
    return base if len(base) <= MAX_UI_BASE else None


def job_page(base: str | None, job_id: str) -> str | None:
    """The address of job `job_id`'s page in the web UI at `base` (None without a base)."""
    if base is None:
        return None
    return JOB_PAGE.format(base=_markdown_safe(base), job_id=quote(job_id, safe=""))


def _markdown_safe(address: str) -> str:
    """An address that ends neither a Markdown link nor a table cell: ( ) | < > escaped."""
    return address.translate({ord(c): f"%{ord(c):02X}" for c in "()|<> "})
