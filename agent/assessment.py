"""One deployment, assessed: what is wanted, what runs, what differs, what to do (pure data).

Made by `reconcile.assess` (shared by `plan` and `sync`), read by the executor and by
`report.document.next_status`, which records it with what its action did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.diff import Difference
from agent.load import SpecProblem
from agent.model.observation import JobHealth, Observation
from agent.model.spec import Deployment, DeploymentTarget
from agent.model.status import DeploymentStatus, JobInputs
from agent.model.verdict import Verdict, WindowVerdict
from agent.plan import Plan


@dataclass
class Assessment:
    """One deployment, assessed: what is wanted, what runs, what differs, what to do."""

    name: str
    desired: Deployment | None
    desired_hash: str | None
    spec_file: str | None
    target: DeploymentTarget | None
    previous: DeploymentStatus | None
    observation: Observation
    difference: Difference
    plan: Plan
    problems: tuple[SpecProblem, ...] = ()
    warnings: tuple[SpecProblem, ...] = ()
    events: tuple[str, ...] = ()
    verdict: Verdict = Verdict()
    deleted: bool = False            # its spec is gone, on positive evidence (agent.deletion)
    inputs: JobInputs = field(default_factory=JobInputs)   # its job beyond the spec's text
    next_savepoint_at: str | None = None   # when its next periodic savepoint falls due
    next_disposal_at: str | None = None    # when its next savepoint grows beyond maxAge
    unhealthy: str | None = None           # how its running job breaks its health policy
    health: JobHealth | None = None        # its running job's, when it was read (health.py)
    window: WindowVerdict = WindowVerdict()   # what the sync windows say of its changes now

    @property
    def target_name(self) -> str | None:
        """Its target: the desired spec's, or the one it last ran on."""
        if self.target is not None:
            return self.target.name
        return self.previous.status.target if self.previous else None
