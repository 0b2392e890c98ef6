"""A cycle that changed nothing, kept so that the next one can end as soon as it has looked
(pure).

A cycle decides from the spec commit, the status branch's head, each target's jobs overview and
the time, and for some deployments from more: a jar's object in a store or on a server, secrets
in the agent's environment and files, a `file://` jar, a running job's health, an upgrade's
stability window. A cycle that acted on nothing and wrote nothing, run again on the same commit,
status head and overviews before any time it depends on comes, decides the same again, unless one
of its deployments reads more (`quiet_cycle` then gives None). So `sync` keeps such a cycle
(`Caches.quiet`), and the next one fetches git, reads each cluster's jobs overview once and, when
it sees what the kept one saw (`QuietCycle.holds`), ends there: no deployment is looked at.

The same holds of one deployment: one that needed nothing and whose status stayed as it was is
kept with what its assessment rested on (`QuietDeployment`: its spec, problems, target, status
document, what its cluster shows of it, its inputs, the blobs of its files, the policies). A cycle
that must look again, because one file changed, takes the kept assessment of every deployment
whose grounds are the same, and its status is its previous document: the cycle's work is that of
what changed.

A quiet cycle is also kept in the work dir (`to_snapshot`, `from_snapshot`: what it saw, its
targets, unattributed problems and status documents, as JSON), so that a fresh process — cron's
`sync`, a daemon restarted — that sees the same ends as soon as it has looked, without reading a
spec or status file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from agent.assessment import Assessment
from agent.clock import parse
from agent.load import LoadResult, Located, SpecProblem
from agent.model.observation import ClusterView, ObservedJob
from agent.model.spec import Deployment, DeploymentTarget
from agent.model.status import DeploymentStatus, JobInputs


@dataclass(frozen=True)
class Sighting:
    """What a cycle's decisions rest on besides the time."""

    commit: str
    status_head: str | None
    views: Mapping[str, ClusterView]    # target name -> its jobs overview
    rivals: tuple[str, ...] = ()        # the selectors of other shards' live leases
    trust: str = ""                     # the trusted keys, as read (`signatures.keys_read`)


@dataclass(frozen=True)
class QuietCycle:
    """A cycle that acted on nothing and wrote nothing, what it saw, and what it found."""

    seen: Sighting
    loaded: LoadResult                  # its targets are connected to again to look
    documents: tuple[DeploymentStatus, ...]
    until: str | None                   # when time alone changes a decision (None: never)
    wake_at: str | None                 # when the daemon is to run a cycle anyway
    unattributed: tuple[SpecProblem, ...] = ()   # the problems its dashboard lists apart

    def holds(self, seen: Sighting, now: str) -> bool:
        """The cycle would decide the same again: it sees the same, and its time has not come."""
        return seen == self.seen and (self.until is None or parse(now) < parse(self.until))

    def to_snapshot(self) -> dict[str, Any]:
        """The cycle as JSON values, for a fresh process (`from_snapshot`)."""
        return {
            "commit": self.seen.commit, "statusHead": self.seen.status_head,
            "rivals": list(self.seen.rivals), "trust": self.seen.trust,
            "views": {name: {"reachable": view.reachable, "error": view.error,
                             "jobs": {key: [asdict(job) for job in jobs]
                                      for key, jobs in view.jobs.items()}}
                      for name, view in self.seen.views.items()},
            "targets": {name: {"file": located.file, "line": located.line,
                               "spec": located.spec.model_dump(mode="json", by_alias=True)}
                        for name, located in self.loaded.targets.items()},
            "unattributed": [asdict(problem) for problem in self.unattributed],
            "documents": [document.document() for document in self.documents],
            "until": self.until, "wakeAt": self.wake_at}

    @classmethod
    def from_snapshot(cls, kept: dict[str, Any]) -> QuietCycle:
        """The cycle `to_snapshot` gave; ValueError (pydantic's included), KeyError or
        TypeError when `kept` is not one."""
        views = {name: ClusterView(view["reachable"], view["error"], {
            key: [ObservedJob(**job) for job in jobs] for key, jobs in view["jobs"].items()})
            for name, view in kept["views"].items()}
        loaded = LoadResult(
            targets={name: Located(DeploymentTarget.model_validate(target["spec"]),
                                   target["file"], target["line"])
                     for name, target in kept["targets"].items()})
        return cls(Sighting(kept["commit"], kept["statusHead"], views,
                            tuple(kept.get("rivals", ())), kept.get("trust", "")), loaded,
                   tuple(DeploymentStatus.model_validate(d) for d in kept["documents"]),
                   kept["until"], kept["wakeAt"],
                   tuple(SpecProblem(**problem) for problem in kept["unattributed"]))


def quiet_cycle(seen: Sighting, loaded: LoadResult, assessments: list[Assessment],
                documents: list[DeploymentStatus], wake_at: str | None,
                unattributed: tuple[SpecProblem, ...] = ()) -> QuietCycle | None:
    """The cycle to keep, or None when it cannot be repeated from what it saw: a target it could
    not reach, or a deployment that reads more than git and the overviews (see the module)."""
    if not all(view.reachable and not view.unreachable for view in seen.views.values()) or any(
            _reads_more(item, loaded) for item in assessments):
        return None
    return QuietCycle(seen, loaded, tuple(documents), _until(assessments), wake_at,
                      unattributed)


@dataclass(frozen=True)
class QuietDeployment:
    """A deployment that needed nothing and whose status stayed as it was: its assessment, and
    what that rested on (reconcile's grounds, compared whole)."""

    grounds: tuple
    assessment: Assessment
    until: str | None

    def holds(self, grounds: tuple, now: str) -> bool:
        return grounds == self.grounds and (self.until is None or parse(now) < parse(self.until))


def quiet_deployment(grounds: tuple | None, item: Assessment, document: DeploymentStatus,
                     loaded: LoadResult) -> QuietDeployment | None:
    """`item` to keep, or None: it acted, told something, changed its status, or reads more."""
    if grounds is None or document is not item.previous or item.events \
            or _reads_more(item, loaded):
        return None
    return QuietDeployment(grounds, item, _until([item]))


def _until(assessments: list[Assessment]) -> str | None:
    """When time alone changes one of their decisions (None: never)."""
    times = [t for item in assessments for t in (item.next_savepoint_at, item.next_disposal_at)
             if t is not None]
    return min(times, key=parse, default=None)


def _reads_more(item: Assessment, loaded: LoadResult) -> bool:
    located = loaded.deployments.get(item.name)
    return (item.plan.changes_anything or item.plan.deferred is not None   # (a window opens)
            or item.observation.assumed
            or not item.observation.reachable or item.health is not None
            or item.inputs != JobInputs() or item.name in loaded.secret_readers
            or (located is not None and _file_jars(located.spec))
            or (item.previous is not None and item.previous.status.stability is not None))


def _file_jars(deployment: Deployment) -> bool:
    """The deployment's jar or a dependency is a file of the agent's machine."""
    artifact = deployment.spec.template.spec.artifact
    return any(uri.lower().startswith("file:")
               for uri in (artifact.file_uri, *artifact.dependencies) if uri)
