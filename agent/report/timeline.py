"""The status branch's `timeline.svg`: each deployment's jobs and savepoints over time (pure).

One lane per deployment (problems first, as in the dashboard), one bar per job from its start
to its end (or to the report's time while it runs), coloured by how it ended, with its
generation in it; a diamond for each savepoint. Plain SVG written as text: GitHub and GitLab
show it as an image, nothing renders it in a browser first.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from agent.clock import parse
from agent.model.job_states import JobState
from agent.model.status import DeploymentStatus, Job

MAX_LANES = 30
WIDTH, LABEL, LANE, AXIS = 960, 200, 24, 28
_COLOURS = {JobState.STARTING: "#f2c94c", JobState.STARTED: "#2fa84f",
            JobState.TERMINATING: "#f2c94c", JobState.TERMINATED: "#9aa5b1",
            JobState.FINISHED: "#9aa5b1", JobState.FAILED: "#d64545"}
_SAVEPOINT = "#2d6cdf"


def render_timeline(documents: list[DeploymentStatus], as_of: str | None) -> str | None:
    """The SVG of the first MAX_LANES `documents` (already in dashboard order), from the
    earliest job start to `as_of`; None when no deployment has run a job yet."""
    shown = [d for d in documents if d.status.history.jobs][:MAX_LANES]
    if not shown or as_of is None:
        return None
    first = min(j.started_at for d in shown for j in d.status.history.jobs)
    start, end = parse(first).timestamp(), parse(as_of).timestamp()
    span = max(end - start, 60.0)

    def x(moment: str) -> float:
        return LABEL + (parse(moment).timestamp() - start) / span * (WIDTH - LABEL - 10)

    height = AXIS + LANE * len(shown) + AXIS
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
             f'<text x="4" y="18" font-weight="bold">Jobs and savepoints until {as_of}</text>']
    for lane, document in enumerate(shown):
        top = AXIS + lane * LANE
        parts.append(f'<text x="4" y="{top + 16}">{escape(document.name[:28])}</text>')
        for job in document.status.history.jobs:
            parts.append(_bar(job, x(job.started_at), x(job.ended_at or as_of), top))
        for savepoint in document.status.history.savepoints:
            cx, cy = x(savepoint.created_at), top + LANE / 2
            parts.append(f'<path d="M{cx:.1f},{cy - 6} l6,6 l-6,6 l-6,-6 z" '
                         f'fill="{_SAVEPOINT}"><title>savepoint {savepoint.origin.value} '
                         f'{savepoint.created_at}: {escape(savepoint.location)}</title></path>')
    axis = AXIS + LANE * len(shown) + 16
    parts.append(f'<text x="{LABEL}" y="{axis}">{_short(first)}</text>')
    parts.append(f'<text x="{WIDTH - 10}" y="{axis}" text-anchor="end">{_short(as_of)}</text>')
    hidden = len([d for d in documents if d.status.history.jobs]) - len(shown)
    if hidden > 0:
        parts.append(f'<text x="{WIDTH / 2}" y="{axis}" text-anchor="middle">and {hidden} '
                     'more deployments (see status.json)</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _bar(job: Job, left: float, right: float, top: int) -> str:
    width = max(right - left, 2.0)
    colour = _COLOURS.get(job.state, "#9aa5b1")
    label = (f'<text x="{left + 3:.1f}" y="{top + 16}" fill="#ffffff">#{job.generation}</text>'
             if width > 24 else "")
    return (f'<rect x="{left:.1f}" y="{top + 4}" width="{width:.1f}" height="{LANE - 8}" '
            f'rx="3" fill="{colour}"><title>job #{job.generation} {job.id} {job.state.value} '
            f'({job.flink_status}), parallelism {job.parallelism}, {job.started_at} → '
            f'{job.ended_at or "still running"}</title></rect>{label}')


def _short(moment: str) -> str:
    return moment.replace("T", " ").removesuffix("Z") + " UTC"
