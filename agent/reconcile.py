"""One cycle of the agent, top to bottom: source -> load -> observe -> diff -> plan -> execute ->
report (I/O: git, Flink; the decisions are made by the pure modules it calls).

`sync` reads as the cycle does: `assess` (nothing changes anywhere; shared with `plan`, so what
a reviewer approves is what runs), `act` (the plans carried out, under the lease) and `record`
(the status branch written).
"""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from threading import Event, Lock, Timer
from typing import Callable

from agent.artifact_check import ARTIFACT, field_path
from agent.checks import check_all
from agent.assessment import Assessment
from agent.caches import Caches
from agent.config import Settings
from agent.adoption import adoption_problem
from agent.defaults import leaf_values
from agent.diff import (Difference, FieldChange, adopted_jobs, difference, field_changes,
                        spec_document, to_adopt)
from agent.errors import (ArtifactError, FlinkGitopsError, StatusKept, StatusPushRejected,
                          TransientError, Untrusted)
from agent import testpoints
from agent.clock import from_millis, iso, parse, utc_now
from agent.execute import Execution
from agent.model.outcome import Outcome, Release
from agent.flink import target as targets
from agent.flink.artifacts import JobProgram, dependency_jars, job_program
from agent.flink import application, local
from agent.flink.python import DriverOutput, PythonSite
from agent.flink.deployment_clusters import DeploymentClusters
from agent.flink.rest import FlinkClient
from agent.health import breach, policy_of, read_all as read_health, restart_for, settling
from agent.job_inputs import Read, read_all
from agent.job_ids import spec_digest
from agent.lease import Lease, Rival, rivals
from agent.memo import Memo
from agent.deletion import Deletions, deletions
from agent.load import (LoadResult, Located, SpecProblem, by_name, load, load_blobs,
                        target_problems)
from agent.model.resources import SizeError, size_of
from agent.model.shard import Placement, Selector
from agent.model.spec import (ADOPT_JOB_ANNOTATION, ArtifactKind, ArtifactStores, Deployment,
                              DeploymentTarget)
from agent.model.status import ActionResult, DeploymentStatus, JobInputs
from agent.model.observation import (ClusterView, JobHealth, Observation, ObservedJob,
                                     Settling, assumed_from_status)
from agent.observe import observe_cluster
from agent.plan import Plan, heals, held, naming_problem, plan
from agent.retention import Upkeep, upkeep
from agent.model.verdict import SignatureVerdict, Verdict, WindowVerdict
from agent.policy import PolicySet, compile_policies, evaluate, policy_input, with_built_ins
from agent.recover import recover
from agent.status_store import RACES, Files, StatusStore, StoredBlob
from agent.report.dashboard import status_files
from agent.report.links import ui_bases
from agent.report.document import CycleFacts, in_progress, next_status
from agent.report.review import Review, ReviewSet
from agent.source import SpecRepository
from agent.quiet import QuietCycle, Sighting, quiet_cycle, quiet_deployment
from agent.snapshots import load_snapshot, save_snapshot
from agent.signatures import Trust, applied_revision, commit_input, keys_read, verify
from agent.state_check import state_check
from agent.sync_windows import Timetable, gated

log = logging.getLogger(__name__)

STABILITY_POLL_S = 5   # an upgrade in its stability window is looked at this often
SIGNAL_CHECK_S = 0.05  # while actions run, the main thread wakes this often: a signal the
                       # kernel gave another thread is only handled when it runs (SIGTERM must
                       # stop the next action from starting)


@dataclass
class Cycle:
    """Everything one cycle looked at and decided, before anything was executed."""

    commit: str
    loaded: LoadResult
    assessments: list[Assessment]
    clients: Clients = field(default_factory=dict)
    status_head: str | None = None    # the status branch commit the assessment started from
    views: dict[str, ClusterView] = field(default_factory=dict)   # each target's jobs
    grounds: dict[str, tuple] = field(default_factory=dict)   # what each assessment rests on
    shard: Selector = Selector()      # the deployments this agent acts on (`--shard-selector`)
    owned: frozenset[str] = frozenset()   # whose status documents are this cycle's to write
    unplaced: tuple[SpecProblem, ...] = ()   # refused specs no shard can be told to claim
    rivals: tuple[Rival, ...] = ()    # other shards' live leases
    signature: SignatureVerdict | None = None   # whether the spec branch's head is applied
    trust: str = ""                   # the trusted keys it was verified with (`keys_read`)

    @property
    def sighting(self) -> Sighting:
        return Sighting(self.commit, self.status_head, self.views,
                        tuple(str(rival.shard) for rival in self.rivals), self.trust)

    def unattributed(self) -> list[SpecProblem]:
        """The spec problems the dashboard lists apart: of no readable Deployment, (for a
        shard) of refused specs no shard claims, and a spec branch head that is not trusted."""
        untrusted = [SpecProblem(self.signature.branch, 0, self.signature.message())] \
            if self.signature is not None and not self.signature.trusted else []
        return self.loaded.unattributed() + list(self.unplaced) + untrusted


@dataclass
class SyncResult:
    commit: str
    documents: list[DeploymentStatus]
    outcomes: dict[str, Outcome]
    status_commit: str | None

    unattributed: list[SpecProblem] = field(default_factory=list)
    wake_at: str | None = None   # when a cycle is due whatever git does: a periodic savepoint,
                                 # or an upgrade in its stability window looked at again
    checkpoints: dict[str, float] = field(default_factory=dict)   # deployment -> when its job
    # last completed a checkpoint (s since the epoch), of the jobs whose health was read

    @property
    def settling(self) -> bool:
        """An upgrade is still in its stability window (a later cycle settles it)."""
        return any(d.status.stability is not None for d in self.documents)

    @property
    def exit_code(self) -> int:
        healthy = all(d.in_desired_state for d in self.documents)
        return 0 if healthy and not self.unattributed else 1


def assess(settings: Settings, source: SpecRepository, caches: Caches,
           start_local: bool = True, head: str | None = None, offline: bool = False,
           fetched: bool = False, looked: Looked | None = None) -> Cycle:
    """Fetches, loads, observes, diffs and plans every deployment; changes nothing in Flink.

    `head` plans another revision than the branch's; with `offline`, a deployment whose cluster
    does not answer is planned from what its status last recorded, and secret references that
    cannot be expanded here are warnings (for `plan`, never `sync`). `fetched`: the repository
    was just fetched; `looked`: the targets were just observed (both by `_repeated`).
    """
    if not fetched:
        source.fetch()
    store = StatusStore(source, settings.status_branch, caches.documents)
    status_head = store.head()
    trust = keys_read(settings.allowed_signers, settings.trusted_gpg_keyring)
    signature, applied = _signature(settings, source, head or settings.branch, status_head)
    commit = signature.head if signature.trusted else signature.applied
    loaded = load_blobs(source.spec_blobs(commit, settings.path), source.read_blobs,
                        caches.parsed)
    blobs: dict[str, tuple[str | None, ...]] = {}   # each deployment's files in the repo
    files = source.files(commit)

    def blobs_of(located: Located) -> tuple[str | None, ...]:
        if located.spec.name not in blobs:
            blobs[located.spec.name] = _repo_blobs(files, located.spec)
        return blobs[located.spec.name]
    check_all(loaded, lambda path: source.read(commit, path),
              lambda path: source.has_file(commit, path), blobs_of, settings.file_roots,
              settings.artifact_cache, lambda located: _dependency_jars(
                  settings, source, commit, loaded, located.spec), offline, caches.checks)
    policies = compile_policies(with_built_ins(source.spec_texts(
        commit, "policies", suffixes=(".rego",))), settings.policy_package, caches.policies,
        settings.snapshots)
    commit_facts = commit_input(
        source, commit, signature.signer if commit == signature.head else None,
        applied or applied_revision(source, status_head)) if policies.reads_commit else None
    previous, unreadable_status = store.read()
    shard = Selector.parse(settings.shard_selector)
    problem_names = {p.name for p in loaded.problems if p.kind == "Deployment" and p.name}
    placements = _placements(loaded, previous, problem_names)
    live = () if offline else tuple(rivals(source, settings.status_branch, shard, caches.leases))
    unplaced: list[SpecProblem] = []
    if not shard.everything:   # the other shards' deployments are not looked at
        ours = {name for name, placed in placements.items() if shard.claims(placed)}
        unplaced = [p for p in loaded.problems if p.kind == "Deployment" and p.name
                    and placements[p.name] is None]
        previous = {name: document for name, document in previous.items() if name in ours}
        problem_names &= ours
    gone = deletions(loaded, previous, settings.max_deletions)
    names = sorted({name for name in loaded.deployments if shard.claims(placements[name])}
                   | problem_names | set(gone.held) | set(gone.deleted))
    distrusted = set() if signature.trusted else _distrusted(
        source, settings, caches, signature.head, commit, loaded, files, shard)
    names = sorted(set(names) | distrusted)

    refused = by_name(p for p in loaded.problems if p.kind == "Deployment")
    wanted = {name: _wanted(name, loaded, refused.get(name, ()), previous.get(name),
                            gone.held.get(name, ())) for name in names}
    used = sorted({target for _, _, target in wanted.values() if target})
    clients, views = looked if looked is not None and sorted(looked[1]) == used else \
        _observe(settings, loaded.targets, used, start_local, caches)
    inputs = read_all({name: (loaded.deployments[name], _stores(loaded.targets.get(target)
                                                                 and loaded.targets[target].spec),
                              previous[name].status.applied_inputs if name in previous else None)
                       for name, (desired, _, target) in wanted.items() if desired},
                      lambda path: source.read(commit, path), settings.workdir, offline,
                      caches.artifacts)
    health = {} if offline else read_health(_health_reads(loaded, wanted, previous, clients,
                                                          views))
    warned = by_name(w for w in loaded.warnings if w.kind == "Deployment")
    now, assessments, grounds = utc_now(), [], {}
    timetable = Timetable.of(loaded, parse(now))
    for name in names:
        desired, problems, target_name = wanted[name]
        # a deployment never applied whose spec is refused has no target to look at
        view = views.get(target_name) or ClusterView(
            target_name is None, error=None if target_name is None else
            f"no target {target_name!r}")
        target = loaded.targets.get(target_name)
        observation = view.of(name, adopted_jobs(name, desired,
                                                 previous[name].status if name in previous
                                                 else None))
        claimed = tuple(rival for rival in live if rival.shard.claims(placements.get(name)))
        contested = _claim(shard, claimed) or _handed_over(previous.get(name), live)
        window = timetable.verdict(placements.get(name))
        distrust = signature.message() if name in distrusted else None
        grounds[name] = (settings, offline, loaded.deployments.get(name), tuple(problems),
                         target, previous.get(name), observation, inputs.get(name),
                         blobs.get(name) if desired else (), warned.get(name, ()), policies,
                         name in gone.deleted, gone.guarded, claimed, contested, window,
                         distrust)
        kept = caches.deployments.get(name)
        if kept is not None and name not in unreadable_status and kept.holds(grounds[name], now):
            assessments.append(kept.assessment)
            continue
        target = target.spec if target is not None else None
        try:
            assessment = _assess_one(settings, source, commit, name, desired, problems, target,
                                     loaded, previous.get(name), observation,
                                     _client(clients, target_name, name), policies, gone,
                                     offline,
                                     inputs.get(name), health.get(name), caches.state_checks,
                                     warned.get(name, ()), window, commit_facts,
                                     contested, distrust)
        except FlinkGitopsError as error:   # an odd answer of Flink's: this deployment only
            log.warning("%s: not assessed: %s", name, error)
            assessment = _unassessed(name, target, previous.get(name), str(error))
        except Exception as error:  # noqa: BLE001 - a bug or an answer no boundary foresaw
            log.exception("%s: assessing failed", name)
            assessment = _unassessed(name, target, previous.get(name),
                                     f"the agent could not assess it: {type(error).__name__}")
        if name in unreadable_status:
            assessment.events += (unreadable_status[name],)
        assessments.append(assessment)
    policies.save()
    return Cycle(commit, loaded, assessments, clients, status_head, views, grounds, shard,
                 frozenset(names) | frozenset(previous), tuple(unplaced), live, signature,
                 trust)


def _placements(loaded: LoadResult, previous: dict[str, DeploymentStatus],
                problem_names: set[str]) -> dict[str, Placement | None]:
    """What a shard selector sees of each deployment: its spec's labels and target, else its
    last status's (a deployment deleted from git), else nothing (a refused spec never
    applied)."""
    placements: dict[str, Placement | None] = {}
    for name in set(loaded.deployments) | problem_names | set(previous):
        located, document = loaded.deployments.get(name), previous.get(name)
        placements[name] = (_placed_at(located) if located
                            else _placed_by(document) if document else None)
    return placements


def _placed_at(located: Located) -> Placement:
    """Where a deployment's spec places it: its labels and target."""
    return Placement(located.spec.metadata.labels, located.spec.spec.deployment_target_name)


def _placed_by(document: DeploymentStatus) -> Placement:
    """Where a deployment's status document places it: the labels and target it was applied
    with."""
    return Placement(document.metadata.labels, document.status.target)


def _claim(shard: Selector, claimed: tuple[Rival, ...]) -> str | None:
    """Why a deployment that other live shards claim too is acted on by none (None: it is this
    agent's alone)."""
    if not claimed:
        return None
    others = " and ".join(f"{rival.shard.shown()} (agent {rival.holder.agent})"
                          for rival in claimed)
    return (f"claimed by two shards, {shard.shown()} (this agent) and {others}: their "
            "selectors overlap, and no agent acts on it until one of them is changed")


def _handed_over(document: DeploymentStatus | None, live: tuple[Rival, ...]) -> str | None:
    """Why a deployment that moved to this shard (its labels or target changed) is not taken
    over yet: the agent of the shard its status was written in is live, and still acting on it
    (None: nothing to wait for; a crashed agent's half-done action is finished from Flink's
    records, as after any crash)."""
    action = document.status.last_action if document is not None else None
    if action is None or action.result != ActionResult.IN_PROGRESS:
        return None
    acting = next((rival for rival in live if rival.shard.claims(_placed_by(document))), None)
    if acting is None:
        return None
    return (f"moved here from the shard {acting.shard.shown()}, whose agent "
            f"({acting.holder.agent}) is still acting on it: taken over once that action ends")


def _assess_one(settings: Settings, source: SpecRepository, commit: str, name: str,
                desired: Deployment | None, problems: list[SpecProblem],
                target: DeploymentTarget | None, loaded: LoadResult,
                previous: DeploymentStatus | None, observation: Observation,
                client: FlinkClient | None, policies: PolicySet, gone: Deletions,
                offline: bool, read: Read | None, health: JobHealth | None,
                checks: Memo, warned: tuple[SpecProblem, ...], window: WindowVerdict,
                commit_facts: dict | None = None, contested: str | None = None,
                distrust: str | None = None) -> Assessment:
    """One deployment: recovered, diffed, planned, its new job's state checked, judged by the
    policies and let run by the sync windows (`observation`: what its target shows of it;
    `read`: its inputs beyond the spec's text, or why they could not be read; `health`: its
    running job's, read when it has a health policy; `checks`: the state checks remembered;
    `warned`: its spec's warnings; `window`: what the sync windows say of its changes now;
    `commit_facts`: the applied commit, as policies see it; `contested`: why another shard's
    agent keeps it from this one, `_claim`, `_handed_over`; `distrust`: why the spec branch's
    head, which changes it, is not applied)."""
    inputs, warnings, located = JobInputs(), [], loaded.deployments.get(name)
    try:
        if isinstance(read, Exception):
            raise read
        if desired and read is not None:
            inputs, warnings = read
        sized = target is not None and target.spec.cluster_per_deployment
        desired_hash = _job_hash(desired, source, commit, inputs, sized) if desired else None
    except ArtifactError as error:   # the object store says the jar is not there: INVALID
        field = field_path(str(error).split(" ", 1)[0])   # jarUri, additionalDependencies[n]
        problems = [*problems, SpecProblem(located.file, located.line_of(*ARTIFACT, *field),
                                           str(error), "Deployment", name)]
        desired = desired_hash = None
    # (ArtifactUnavailable, the store not answering, leaves the deployment unassessed: a jar's
    # identity unknown never restarts a job)
    if offline and not observation.reachable:
        observation = assumed_from_status(previous.status.job if previous else None,
                                          observation.error)
    recovery = recover(name, previous, observation, client, desired, desired_hash)
    before = recovery.previous
    if desired is not None:
        before = _inputs_recorded(before, inputs, desired_hash, {
            _job_hash(desired, source, commit, known, sized) for known in
            (JobInputs(), JobInputs(artifact=inputs.artifact))})
    if desired is not None and (unnamed := naming_problem(
            desired, before.status if before else None)) is not None:
        problems = [*problems, SpecProblem(located.file, located.line_of(
            "spec", "initialSavepointPath"), unnamed, "Deployment", name)]
    adopting = to_adopt(desired, before.status if before else None)
    if adopting is not None and (refused := adoption_problem(
            adopting, desired, observation, client)) is not None:
        problems = [*problems, SpecProblem(located.file, located.line_of(
            "metadata", "annotations", ADOPT_JOB_ANNOTATION), refused, "Deployment", name)]
    diff = difference(name, desired, desired_hash, before, observation)
    if diff.job_changed and not diff.fields:   # only what the spec's text does not show
        diff = replace(diff, fields=_input_changes(
            before.status.applied_inputs if before else None, inputs))
    verdict, due, unhealthy = Verdict(), Upkeep(), None
    if problems:
        decided = held(name, "spec refused; the running job is left as it is")
    elif contested is not None:
        verdict = Verdict(denials=(contested,))
        decided = held(name, "held for another shard's agent; the running job is left as it is",
                       blocked=True)
    elif desired is None and gone.guarded:
        verdict = Verdict(denials=(gone.guard_message(),))
        decided = held(name, "deletion held by the guard; the running job is left as it is",
                       blocked=True)
    else:
        now = utc_now()
        unhealthy = _unhealthy(desired, target, before, observation, health, now)
        restart = restart_for(policy_of(desired, target) if desired else None, unhealthy,
                              before.status.health_restarted_at if before else None, now)
        due = upkeep(desired, target, before.status if before else None,
                     not offline and observation.active is not None   # (a review shows no
                     and observation.active.flink_status == "RUNNING",  # timed savepoints)
                     now) if desired is not None else Upkeep()
        watch = before.status.stability if before is not None else None
        settled = None if watch is None else Settling() if offline else settling(
            watch, observation, health, now)   # (a review shows the window as it stands)
        decided = plan(diff, desired, before, observation, settings.rollback, due, restart,
                       settled)
        if distrust is not None:   # only a job that died is started again, as it ran
            verdict = Verdict(warnings=(distrust,)) if heals(decided, diff) else \
                Verdict(denials=(distrust,))
        elif desired is not None:
            decided = replace(decided, state_check=state_check(
                decided, desired, desired_hash, before.status if before else None,
                client if observation.reachable and not observation.assumed else None,
                lambda: _program(settings, source, commit, target, client, desired),
                target is not None and target.spec.local is not None, checks))
            if decided.state_check is not None:
                log.info("%s: state check: %s", name, decided.state_check.summary)
            verdict = evaluate(policies, _policy_input(desired, target, decided, before, window,
                                                       commit_facts))
        if verdict.denied:
            decided = replace(held(name, "denied by policy; the running job is left as it is"
                                   if distrust is None else "the spec branch's head is not "
                                   "trusted; the running job is left as it is", blocked=True),
                              state_check=decided.state_check)
        else:
            decided = gated(decided, diff, window, settings.override_window)
    located = loaded.deployments.get(name)
    return Assessment(
        name, None if problems else desired, desired_hash, located.file if located else None,
        target, before, observation, diff, decided, tuple(problems), warned + tuple(warnings),
        tuple(recovery.events), verdict,
        deleted=name in gone.deleted and not gone.guarded and contested is None,
        inputs=inputs, next_savepoint_at=due.next_savepoint_at if not problems else None,
        next_disposal_at=due.next_disposal_at if not problems else None,
        unhealthy=unhealthy, health=health, window=window)


def _unassessed(name: str, target: DeploymentTarget | None, previous: DeploymentStatus | None,
                error: str) -> Assessment:
    """A deployment whose cluster answered something the agent cannot use: nothing is planned
    for it, and its status says why (its target as unreachable)."""
    return Assessment(name, None, None, None, target, previous, Observation(False, error=error),
                      Difference(name, None, False, False),
                      Plan(name, None, reason=f"left as it is: {error}"))


def review(settings: Settings, base: str | None = None, head: str | None = None,
           caches: Caches | None = None) -> ReviewSet:
    """What `sync` would do for `head` (default: the branch), and with `base` the fields each
    deployment changes from base to head. Changes nothing anywhere: no Flink call that changes a
    job, no local cluster started, no push."""
    if caches is None:
        with Caches.for_one_cycle() as caches:
            return review(settings, base, head, caches)
    source = SpecRepository(settings.repo, settings.workdir, caches.trees)
    cycle = assess(settings, source, caches, start_local=False, head=head, offline=True)
    base_commit = source.resolve(base) if base else None
    before = load(source.spec_files(base_commit, settings.path)).deployments if base else {}
    reviews = []
    for item in cycle.assessments:
        changes = item.difference.fields
        if base_commit is not None:
            old = before.get(item.name)
            changes = field_changes(spec_document(old.spec) if old else None,
                                    spec_document(item.desired) if item.desired else None)
            if not (changes or item.problems or item.plan.changes_anything or item.plan.pending
                    or item.plan.blocked):
                continue  # not touched by this change, and nothing to do
        reviews.append(Review(item.name, item.plan, changes, item.verdict,
                              tuple(str(p) for p in item.problems), item.observation.assumed,
                              tuple(str(w) for w in item.warnings),
                              _inherited(cycle.loaded.deployments.get(item.name)),
                              item.window))
    return ReviewSet(cycle.signature.head, base_commit, tuple(reviews),
                     tuple(str(p) for p in cycle.unattributed() if p.line),   # (files' only)
                     cycle.signature)


def _inherited(located: Located | None) -> tuple[tuple[str, object, str], ...]:
    """A deployment's values from its DeploymentDefaults and SessionCluster, as the status would
    keep them (secrets masked): (path, value, the document it is of)."""
    if located is None or not located.origins:
        return ()
    values = leaf_values(spec_document(located.spec))
    return tuple((path, values[path], origin) for path, origin in sorted(located.origins.items())
                 if path in values)


def spec_head(settings: Settings, caches: Caches) -> str:
    """The spec branch's commit, freshly fetched (I/O: git): what a poll compares to decide
    whether git moved since the last cycle."""
    source = SpecRepository(settings.repo, settings.workdir, caches.trees)
    source.fetch()
    return source.resolve(settings.branch)


def sync(settings: Settings, attempts: int = 3, stopping: Event | None = None,
         caches: Caches | None = None, lease: Lease | None = None) -> SyncResult:
    """One full cycle: assess, execute every plan, write the status branch.

    A cycle with something to do takes the repository's lease first (LeaseHeld when another
    agent acts) and assesses again under it when another agent may have acted since (the status
    branch moved, or the lease was taken over), so no two agents ever act on a deployment at
    once. The agent of a shard (`--shard-selector`) holds its shard's `lease` (`shard_lease`)
    from before it assesses, the whole cycle; one is taken for this cycle when none is given.
    A cycle that did nothing and finds the status branch moved meanwhile runs again on top of it
    (a shard's writes its documents on top of the other shards').
    A status an earlier cycle acted for but could not push (the remote was away) is pushed
    first; until it is, the cycle fails (StatusKept) and nothing acts on an older status.
    Once `stopping` is set, running actions finish and the others wait for the next cycle.
    `caches` (a fresh one by default) is what the cycle may remember from earlier cycles.
    Commit statuses (`--commit-status`) and, once the status is written, notifications
    (`--notify`) are only queued: no receiver ever slows or fails the cycle (`agent.outbox`).
    """
    if caches is None:
        with Caches.for_one_cycle() as caches:
            result = sync(settings, attempts, stopping, caches, lease)
            keep_quiet(settings, caches)
            return result
    if lease is None and (lease := shard_lease(settings, caches)) is not None:
        with lease:
            return sync(settings, attempts, stopping, caches, lease)
    from agent.commit_status import CommitStatuses
    from agent.notify import Notifier

    notifier = Notifier.of(settings)   # a malformed --notify or --commit-status: ConfigError,
    CommitStatuses.of(settings)        # before anything is read or done
    source = SpecRepository(settings.repo, settings.workdir, caches.trees)
    source.sign_with(settings.signing_key)
    StatusStore(source, settings.status_branch, caches.documents).push_pending(
        settings.lease_ttl_s)
    attempt = 1
    while True:
        if lease is not None:
            lease.acquire()   # the shard's: taken, or renewed once half its time is gone
        repeated, looked = _repeated(settings, source, caches)
        if repeated is not None:
            return repeated
        cycle = assess(settings, source, caches, fetched=True, looked=looked)
        if any(item.plan.changes_anything for item in cycle.assessments):
            with Lease(source, settings.status_branch, settings.lease_ttl_s) \
                    if lease is None else nullcontext(lease) as acting:
                if acting is not lease and (acting.took_over
                                            or acting.status_head != cycle.status_head):
                    cycle = assess(settings, source, caches)   # another agent may have acted
                outcomes = act(settings, source, cycle, acting, stopping or Event(),
                               Progress(source, settings.status_branch, cycle, caches))
                documents = next_statuses(cycle, outcomes, caches.deployments)
                try:
                    result = record(source, settings.status_branch, cycle, documents, outcomes,
                                    caches, acted=True)
                except StatusKept:   # pushed by the next cycle; what it tells is told now
                    notifier.announce(cycle.commit, cycle.assessments, documents, outcomes)
                    raise
                _retire_idle(cycle)
            break
        try:
            result = record(source, settings.status_branch, cycle,
                            next_statuses(cycle, {}, caches.deployments), {}, caches, acted=False)
            if result.status_commit is None:
                caches.quiet = quiet_cycle(cycle.sighting, cycle.loaded, cycle.assessments,
                                           result.documents, result.wake_at,
                                           tuple(result.unattributed))
            _retire_idle_unacted(settings, source, cycle, lease)
            break
        except StatusPushRejected:
            if attempt == attempts:
                raise
            attempt += 1
            log.info("the status branch moved during the cycle: assessing again on top of it")
    notifier.announce(cycle.commit, cycle.assessments, result.documents, result.outcomes)
    return result


def _retire_idle(cycle: Cycle) -> None:
    """The clusters of their own that deployments no longer run a job on (a start that failed
    for good, a job that finished, a JobManager gone), ended once the cycle's actions are
    recorded, under the lease (their jobs' last records kept: the next cycle sees them as
    before)."""
    for target, client in cycle.clients.items():
        if isinstance(client, DeploymentClusters):
            for name in client.retire_idle():
                log.info("%s: its cluster ran no job any more and was ended", name,
                         extra={"deployment": name, "target": target})


def _retire_idle_unacted(settings: Settings, source: SpecRepository, cycle: Cycle,
                         lease: Lease | None) -> None:
    """After a cycle that acted on nothing: the clusters of their own whose job ended by itself
    (a bounded job that finished) are ended all the same, under the lease, taken for that only
    when there is such a cluster (held by another agent, or the remote away: left to a later
    cycle)."""
    if not any(isinstance(client, DeploymentClusters) and client.any_idle()
               for client in cycle.clients.values()):
        return
    try:
        with Lease(source, settings.status_branch, settings.lease_ttl_s) if lease is None \
                else nullcontext(lease):
            _retire_idle(cycle)
    except TransientError as reason:
        log.info("clusters that run no job any more are left to a later cycle: %s", reason)


def shard_lease(settings: Settings, caches: Caches) -> Lease | None:
    """The lease of the shard `settings` select, which its agent holds while it runs (None for
    the agent of the whole repo, which takes the repository's only to act)."""
    shard = Selector.parse(settings.shard_selector)
    if shard.everything:
        return None
    return Lease(SpecRepository(settings.repo, settings.workdir, caches.trees),
                 settings.status_branch, settings.lease_ttl_s, shard)


def _repeated(settings: Settings, source: SpecRepository,
              caches: Caches) -> tuple[SyncResult | None, Looked | None]:
    """The kept quiet cycle's result again, when the spec branch, the status branch and every
    target's jobs show what it saw and its time has not come (`agent.quiet`): the cycle ends
    there. Else None (the repository is fetched either way), with what the targets showed when
    they were looked at."""
    kept, caches.quiet = caches.quiet or _quiet_kept_on_disk(settings, caches), None
    source.fetch()
    if kept is None or source.resolve(settings.branch) != kept.seen.commit \
            or StatusStore(source, settings.status_branch).head() != kept.seen.status_head:
        return None, None
    looked = _observe(settings, kept.loaded.targets, sorted(kept.seen.views), True, caches)
    live = rivals(source, settings.status_branch, Selector.parse(settings.shard_selector),
                  caches.leases)
    seen = replace(kept.seen, views=looked[1], rivals=tuple(str(rival.shard) for rival in live),
                   trust=keys_read(settings.allowed_signers, settings.trusted_gpg_keyring))
    if not kept.holds(seen, utc_now()):
        return None, looked
    caches.quiet = kept
    log.debug("git, the status branch and every target's jobs are as the last cycle saw them")
    return SyncResult(kept.seen.commit, list(kept.documents), {}, None,
                      list(kept.unattributed), kept.wake_at), None


QUIET_SNAPSHOT = ("quiet cycle", 1)   # its kind and format version


def _quiet_file(settings: Settings) -> Path:
    """Where the quiet cycle of these settings is kept between processes."""
    digest = hashlib.sha256(repr(settings).encode()).hexdigest()[:16]
    return settings.snapshots / f"quiet-cycle-{digest}.json"


def _quiet_kept_on_disk(settings: Settings, caches: Caches) -> QuietCycle | None:
    """The quiet cycle an earlier process kept (`keep_quiet`), looked for once per `caches`."""
    if caches.quiet_on_disk is not None:
        return None
    kept = load_snapshot(_quiet_file(settings), *QUIET_SNAPSHOT).get("cycle")
    try:
        caches.quiet_on_disk = QuietCycle.from_snapshot(kept) if kept else False
    except (ValueError, KeyError, TypeError) as error:
        log.info("the quiet cycle kept in the work dir is not used: %s", error)
        caches.quiet_on_disk = False
    return caches.quiet_on_disk or None


def keep_quiet(settings: Settings, caches: Caches) -> None:
    """Keeps the last cycle in the work dir when it was quiet and is not kept there already,
    for the next process (a `sync` as it ends, a daemon as it stops)."""
    if caches.quiet is not None and caches.quiet is not caches.quiet_on_disk:
        save_snapshot(_quiet_file(settings), *QUIET_SNAPSHOT,
                      {"cycle": caches.quiet.to_snapshot()})
        caches.quiet_on_disk = caches.quiet


def sync_until_settled(settings: Settings, told: Callable[[SyncResult], None] = lambda _: None,
                       sleep: Callable[[float], None] = time.sleep) -> SyncResult:
    """`sync`, and while an upgrade is in its stability window, `sync` again every
    STABILITY_POLL_S until each has settled (stable, or rolled back), each result but the last
    `told`; a window whose job's health Flink never tells is waited for until a minute after its
    give-up time, and then left to later cycles. (The daemon schedules such cycles instead.)"""
    with Caches.for_one_cycle() as caches, shard_lease(settings, caches) or nullcontext() \
            as lease:
        result = sync(settings, caches=caches, lease=lease)
        deadline = None
        while result.settling:
            latest = max(parse(d.status.stability.give_up_at) for d in result.documents
                         if d.status.stability is not None) + timedelta(minutes=1)
            deadline = max(deadline or latest, latest)
            if parse(utc_now()) > deadline:
                break
            told(result)
            sleep(STABILITY_POLL_S)
            result = sync(settings, caches=caches, lease=lease)
        keep_quiet(settings, caches)
        return result


def next_statuses(cycle: Cycle, outcomes: dict[str, Outcome],
                  quiet: Memo | None = None) -> list[DeploymentStatus]:
    """Each deployment's next status, from its assessment and what its action did. `quiet`
    keeps the deployments that needed nothing and whose status stays as it was, for the next
    cycle (`agent.quiet`): an assessment kept there has its previous status again."""
    now, documents = utc_now(), []
    for item in cycle.assessments:
        outcome = outcomes.get(item.name)
        kept = quiet.get(item.name) if quiet is not None and outcome is None else None
        if kept is not None and kept.assessment is item:
            documents.append(item.previous)
            continue
        documents.append(next_status(CycleFacts(item, outcome, cycle.commit, now)))
        if quiet is not None:
            still = quiet_deployment(cycle.grounds.get(item.name), item, documents[-1],
                                     cycle.loaded) if outcome is None else None
            quiet.put(item.name, still) if still is not None else quiet.forget(item.name)
    if quiet is not None:
        quiet.retain(item.name for item in cycle.assessments)
    return documents


def record(source: SpecRepository, status_branch: str, cycle: Cycle,
           documents: list[DeploymentStatus], outcomes: dict[str, Outcome], caches: Caches,
           acted: bool) -> SyncResult:
    """Writes the status branch: the cycle's `documents`. A push that lost a race raises
    StatusPushRejected, unless the cycle `acted` (under the lease): then its documents are the
    truth, written again on top of the new head, and kept in the work dir for the next cycle
    when the remote cannot take them (StatusKept)."""
    now = utc_now()
    unattributed, ui = cycle.unattributed(), _ui_bases(cycle)
    store = StatusStore(source, status_branch, caches.documents)
    report = (cycle.commit, unattributed, ui, documents)
    if caches.written is not None and caches.written[0] == cycle.status_head \
            and _same_report(caches.written[1], report):
        status_commit = None   # the branch holds these very documents: nothing to render
    else:
        compose = _Composer(cycle, documents, store, caches)
        message = _commit_message(cycle.commit, outcomes)
        testpoints.reached(testpoints.BEFORE_STATUS_PUSH)
        # a shard's agent alone writes its documents: a race with another shard's is merged
        status_commit = store.write_or_keep(compose, message) if acted \
            else store.write(compose, message, races=0 if cycle.shard.everything else RACES)
        if status_commit is not None:   # (a document kept as it was is remembered already)
            store.remember(compose.made, [document for document, item in
                                          zip(documents, cycle.assessments, strict=True)
                                          if document is not item.previous])
        caches.written = (status_commit or store.head(), report)
    checkpoints = {item.name: item.health.last_checkpoint / 1000 for item in cycle.assessments
                   if item.health is not None and item.health.last_checkpoint}
    result = SyncResult(cycle.commit, documents, outcomes, status_commit, unattributed,
                        checkpoints=checkpoints)
    due = [item.next_savepoint_at for item in cycle.assessments if item.next_savepoint_at]
    due += [item.plan.deferred.until for item in cycle.assessments   # a window opens
            if item.plan.deferred is not None and item.plan.deferred.until]
    if result.settling:
        due.append(iso(parse(now) + timedelta(seconds=STABILITY_POLL_S)))
    result.wake_at = min(due, default=None)
    return result


class _Composer:
    """The status branch's files for its head as it is now (`Compose`): this cycle's
    `documents`, the other shards' documents as the head holds them, and the dashboard of
    all; `made`, the last files made."""

    def __init__(self, cycle: Cycle, documents: list[DeploymentStatus], store: StatusStore,
                 caches: Caches):
        self.cycle, self.documents, self.store, self.caches = cycle, documents, store, caches
        self.made: Files = {}

    def __call__(self) -> Files:
        theirs, kept = _other_shards(self.cycle, self.store)
        self.made = status_files(self.documents + theirs, self.cycle.commit,
                                 self.cycle.unattributed(), self.caches.rendered,
                                 _ui_bases(self.cycle)) | kept
        return self.made


def _other_shards(cycle: Cycle, store: StatusStore) -> tuple[list[DeploymentStatus], Files]:
    """The documents at the status branch's head that are other shards' — all that this cycle
    does not own (none for the agent of the whole repo) — and their files there, carried over
    as they are."""
    if cycle.shard.everything:
        return [], {}
    documents, unreadable = store.read()
    theirs = [document for name, document in documents.items() if name not in cycle.owned]
    names = (set(documents) | set(unreadable)) - cycle.owned
    head = store.head()
    kept = {path: StoredBlob(blob) for path, blob in
            (store.source.files(head) if head else {}).items()
            if path.startswith("deployments/") and path.count("/") == 1
            and path[len("deployments/"):].rpartition(".")[0] in names}
    return theirs, kept


def _same_report(written: tuple, report: tuple) -> bool:
    """The same spec commit, unattributed problems, web UIs and the very same documents."""
    return written[:3] == report[:3] and len(written[3]) == len(report[3]) and all(
        kept is document for kept, document in zip(written[3], report[3]))


PROGRESS_INTERVAL_S = 2.0   # progress commits of one cycle: at most one per this (the first
                            # at once), each carrying every action under way so far,
PROGRESS_SHARE = 0.2        # and at most this share of the cycle's time spent writing them


class Progress:
    """The status branch told as actions start: a commit in which each deployment whose action
    is under way is TRANSITIONING, its action IN_PROGRESS with the steps under way, so readers
    see an upgrade while its savepoint is taken. The first action is told at once; actions that
    start within `interval` of the last commit are told together, by one commit at the end of
    it (a first deploy of thousands costs a commit every `interval`, not one per action). The
    interval grows with what a commit costs (a status of thousands of deployments takes seconds
    to render and push), so that progress takes at most PROGRESS_SHARE of the time. The cycle's
    own status replaces them (`close`: nothing is told after it). Best effort: a commit that
    cannot be pushed is a log line, and the action goes on."""

    def __init__(self, source: SpecRepository, status_branch: str, cycle: Cycle,
                 caches: Caches, interval: float | None = None):
        self.source, self.status_branch, self.cycle, self.caches = (source, status_branch,
                                                                    cycle, caches)
        self.interval = PROGRESS_INTERVAL_S if interval is None else interval
        self.under_way: dict[str, DeploymentStatus] = {}
        self.untold: list[Assessment] = []       # started since the last commit
        self.told_at: float | None = None        # monotonic time of the last commit
        self.wait = self.interval                # before the next: grows with a commit's cost
        self.timer: Timer | None = None
        self.closed = False
        self.lock = Lock()         # the fields above
        self.writing = Lock()      # one commit at a time, none after `close`

    def started(self, item: Assessment) -> None:
        """Tells `item`'s action: at once when the last commit is `wait` ago, else with the
        others at the end of it; the commit is made by a thread of its own, so that no action
        waits for it."""
        with self.lock:
            self.under_way[item.name] = in_progress(item, utc_now())
            self.untold.append(item)
            if self.timer is None:
                wait = 0.0 if self.told_at is None else \
                    self.told_at + self.wait - time.monotonic()
                self.timer = Timer(max(0.0, wait), self._tell)
                self.timer.daemon = True
                self.timer.start()

    def close(self) -> None:
        """Every action ended: the cycle's own status follows, no progress after it (a commit
        under way ends first)."""
        with self.lock:
            self.closed = True
            if self.timer is not None:
                self.timer.cancel()
        with self.writing:
            pass

    def _tell(self) -> None:
        """One commit of every action under way that is not told yet."""
        with self.writing:
            with self.lock:
                self.timer = None
                if self.closed or not self.untold:
                    return
                items, self.untold, self.told_at = self.untold, [], time.monotonic()
                documents = [self.under_way.get(i.name) or i.previous
                             for i in self.cycle.assessments
                             if i.name in self.under_way or i.previous is not None]
            message = (f"{items[0].name}: {items[0].plan.action.value} in progress"
                       if len(items) == 1 else f"{len(items)} more actions in progress "
                       f"({items[-1].name}: {items[-1].plan.action.value}, …)")
            try:
                store = StatusStore(self.source, self.status_branch, self.caches.documents)
                store.write(_Composer(self.cycle, documents, store, self.caches), message)
            except FlinkGitopsError as error:
                log.warning("%s: progress could not be written: %s",
                            ", ".join(i.name for i in items[:3]), error)
            with self.lock:
                cost = time.monotonic() - self.told_at
                self.wait = max(self.interval, cost * (1 - PROGRESS_SHARE) / PROGRESS_SHARE)


def act(settings: Settings, source: SpecRepository, cycle: Cycle, lease: Lease,
        stopping: Event, progress: Progress | None = None) -> dict[str, Outcome]:
    """Runs every plan that changes something: the targets at once, on each target at most
    `actions_per_target` at a time, so a slow cluster delays no other. Once `stopping` is set, a
    running action still finishes (its savepoint is recorded) and no further one starts. Each
    action's start is told to `progress`."""
    from agent.commit_status import CommitStatuses

    lanes: dict[tuple[str, int], list[Assessment]] = {}
    acting = [item for item in cycle.assessments if item.plan.changes_anything]
    for index, item in enumerate(acting):
        target = item.target.name if item.target else ""
        lanes.setdefault((target, index % settings.actions_per_target), []).append(item)
    outcomes: dict[str, Outcome] = {}
    statuses = CommitStatuses.of(settings)   # each action reported on the spec commit

    def run_lane(items: list[Assessment]) -> None:
        for item in items:
            if stopping.is_set():
                log.info("%s: %s deferred, the agent is stopping", item.name,
                         item.plan.action.value)
                continue
            lease.acquire()  # renewed before an action once half its time is gone
            where = {"deployment": item.name, "target": item.target.name if item.target else None,
                     "step": item.plan.action.value}
            log.info("%s: %s", item.name, item.plan.summary(), extra=where)
            commit = item.plan.settles.commit if item.plan.settles else cycle.commit
            statuses.started(item, commit)
            if progress is not None and item.plan.steps:
                progress.started(item)
            outcome = outcomes[item.name] = _execute(settings, source, cycle, item)
            statuses.ended(item, commit, outcome)
            log.info("%s: %s %s", item.name, outcome.result.value, outcome.message,
                     extra=where | {"outcome": outcome.result.value})

    try:
        if lanes:
            with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
                running = [pool.submit(run_lane, items) for items in lanes.values()]
                while wait(running, timeout=SIGNAL_CHECK_S).not_done:
                    pass   # the main thread wakes: a SIGTERM another thread took is handled
                for done in running:
                    done.result()
    finally:
        if progress is not None:
            progress.close()
    return outcomes


def _execute(settings: Settings, source: SpecRepository, cycle: Cycle,
             item: Assessment) -> Outcome:
    target = item.target
    if target is None:
        return Outcome(ActionResult.FAILED, "the deployment's target is not in the spec repo")
    desired = Release(item.desired, cycle.commit, item.desired_hash) if item.desired else None
    previous = _applied_release(source, item)
    if item.plan.rolls_back:   # an upgrade unstable in its window: the applied spec again
        desired, previous = previous, None
        if desired is None:
            return Outcome(ActionResult.FAILED, "the applied spec to roll back to is not in git")
    client = _client(cycle.clients, target.name, item.name, tuple(
        release for release in (desired, previous) if release is not None))
    local_python = target.spec.local is not None and item.desired is not None \
        and item.desired.spec.template.spec.artifact.kind == ArtifactKind.PYTHON
    jobmanager = application.home(settings.workdir, item.name) \
        if target.spec.cluster_per_deployment else \
        local.home(settings.workdir, target.spec.local.port) if target.spec.local else None
    execution = Execution(
        client=client, savepoint_dir=target.spec.savepoint_dir,
        start_timeout_s=settings.job_start_timeout_s,
        driver_output=DriverOutput(jobmanager / "log" / "jobmanager.out")
        if local_python else None,
        fetch_program=lambda release: _program(settings, source, release.commit, target,
                                               client, release.deployment))
    try:
        return execution.run(item.plan, desired, previous)
    except FlinkGitopsError as error:
        return Outcome(ActionResult.FAILED, str(error))
    except Exception as error:  # noqa: BLE001 - one deployment's trouble ends no other's action
        log.exception("%s: %s failed", item.name, item.plan.action.value)
        return Outcome(ActionResult.FAILED, f"the action stopped on an unexpected "
                                            f"{type(error).__name__}; the next cycle looks again")


def _wanted(name: str, loaded: LoadResult, refused: tuple[SpecProblem, ...],
            previous: DeploymentStatus | None, held_by: tuple[SpecProblem, ...]):
    """(desired spec, its problems, target name) of one deployment; `refused`: its spec's
    problems; `held_by`: the problems of unreadable files that may hold it (see
    `agent.deletion`)."""
    located = loaded.deployments.get(name)
    problems = list(refused) + list(held_by) + (
        target_problems(located, loaded) if located else [])
    desired = located.spec if located and not problems else None
    target_name = (desired.spec.deployment_target_name if desired
                   else previous.status.target if previous else None)
    return desired, problems, target_name


Clients = dict[str, FlinkClient | DeploymentClusters]   # each target's
Looked = tuple[Clients, dict[str, ClusterView]]   # targets' clients and jobs


def _client(clients: Clients, target_name: str | None, name: str,
            releases: tuple[Release, ...] = ()) -> FlinkClient | None:
    """The client deployment `name` is reached by on its target: the target's, or on one of
    clusters per deployment, its own cluster's (sized for `releases`, the specs it may start)."""
    client = clients.get(target_name) if target_name else None
    if not isinstance(client, DeploymentClusters):
        return client
    sizes = {}
    for release in releases:
        try:
            sizes[spec_digest(release.spec_hash)] = size_of(
                release.deployment.spec.template.spec)
        except SizeError:   # (refused when the spec was checked; nothing of it starts)
            pass
    return client.of(name, sizes)


def _observe(settings: Settings, in_repo: dict[str, Located], names: list[str],
             start_local: bool, caches: Caches) -> Looked:
    """The targets `names` (of `in_repo`, the spec repo's), connected and observed at once: a
    slow cluster delays no other."""

    def one(target_name: str) -> tuple[FlinkClient | None, ClusterView]:
        located = in_repo.get(target_name)
        if located is None:
            return None, ClusterView(False, error=f"DeploymentTarget {target_name!r} is not "
                                                  "in the spec repo")
        try:
            client = targets.connect(located.spec, settings.workdir, start_local,
                                     caches.versions, settings.artifact_cache)
        except FlinkGitopsError as error:
            return None, ClusterView(False, error=str(error))
        try:
            return client, observe_cluster(client)
        except Exception as error:  # noqa: BLE001 - one target's trouble is its own
            log.exception("target %s: observing failed", target_name)
            return client, ClusterView(False, error=f"observing failed: {type(error).__name__}")

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(names)))) as pool:
        observed = dict(zip(names, pool.map(one, names), strict=True))
    clients = {name: client for name, (client, _) in observed.items() if client is not None}
    return clients, {name: view for name, (_, view) in observed.items()}


def _inputs_recorded(before: DeploymentStatus | None, inputs: JobInputs, desired_hash: str,
                     known_before: set[str]) -> DeploymentStatus | None:
    """A job applied before the agent read an input it reads now (a jar's identity, before this
    version; secret values, before the deployment opted in) is taken as running with the input
    as it is now: its status takes the digest with the input, so that no job restarts for the
    reading alone. `known_before`: the job's digests without those inputs."""
    if before is None or before.status.applied_spec_hash not in known_before - {desired_hash} \
            or (before.status.applied_inputs or JobInputs()).secrets is not None:
        return before
    recorded = before.model_copy(deep=True)
    recorded.status.applied_spec_hash = desired_hash
    recorded.status.applied_inputs = inputs
    return recorded


def _input_changes(applied: JobInputs | None, inputs: JobInputs) -> tuple[FieldChange, ...]:
    """What changed of a job whose spec's text did not: its jar's object, its secrets' values."""
    applied = applied or JobInputs()
    changes = []
    if inputs.artifact and applied.artifact != inputs.artifact:
        changes.append(FieldChange("spec.template.spec.artifact.jarUri (the object)",
                                   applied.artifact or "an earlier object", inputs.artifact))
    if inputs.dependencies and applied.dependencies != inputs.dependencies:
        changes.append(FieldChange("spec.template.spec.artifact.additionalDependencies (the "
                                   "objects)", "earlier objects", "changed objects"))
    if inputs.secrets and applied.secrets != inputs.secrets:
        changes.append(FieldChange("secret references (their values)", "earlier values",
                                   "rotated values"))
    return tuple(changes)


def _job_hash(desired: Deployment, source: SpecRepository, commit: str,
              inputs: JobInputs, sized: bool) -> str:
    """The desired job's digest, including the content of a jar or script kept in the spec repo,
    or the identity of one in a store, those of its additionalDependencies, (opted in) its
    secrets' keyed digest, and (`sized`: it runs on a cluster of its own) its cluster's size."""
    artifact = desired.spec.template.spec.artifact
    path = artifact.repo_file()
    blob = (source.blob_id(commit, path) or "missing") if path else None
    blobs = ",".join(source.blob_id(commit, dependency) or "missing"
                     for dependency in artifact.repo_dependencies())
    return desired.job_hash(inputs.digest_part(blob, blobs or None), sized)


def _repo_blobs(files: dict[str, str], desired: Deployment) -> tuple[str | None, ...]:
    """The git blobs of the files of the spec repo (`files`: path -> blob) that `desired`'s job
    is made of."""
    artifact = desired.spec.template.spec.artifact
    paths = [artifact.repo_file(), *artifact.repo_dependencies()]
    return tuple(files.get(path) for path in paths if path)


def _health_reads(loaded: LoadResult, wanted: dict, previous: dict[str, DeploymentStatus],
                  clients: Clients, views: dict[str, ClusterView]
                  ) -> dict[str, tuple[FlinkClient, ObservedJob]]:
    """The running jobs whose health is read: those of deployments with a health policy, and
    those in an upgrade's stability window."""
    reads = {}
    for name, (desired, _, target) in wanted.items():
        located = loaded.targets.get(target)
        watched = name in previous and previous[name].status.stability is not None
        if desired is None or target not in clients or located is None \
                or (policy_of(desired, located.spec) is None and not watched):
            continue
        job = views[target].of(name, adopted_jobs(
            name, desired, previous[name].status if name in previous else None)).active
        if job is not None:
            reads[name] = (_client(clients, target, name), job)
    return reads


def _unhealthy(desired: Deployment | None, target: DeploymentTarget | None,
               before: DeploymentStatus | None, observation: Observation,
               health: JobHealth | None, now: str) -> str | None:
    """Why the deployment's running job breaks its health policy, or None."""
    policy = policy_of(desired, target) if desired is not None else None
    job = observation.active
    if policy is None or health is None or job is None:
        return None
    known = before.status.job if before is not None else None
    started = known.started_at if known is not None and known.id == job.id \
        else from_millis(job.start_time)
    return breach(policy, health, started, now)


def _program(settings: Settings, source: SpecRepository, commit: str, target: DeploymentTarget,
             client: FlinkClient | None, deployment: Deployment) -> JobProgram:
    """The program of `deployment`'s job as of spec commit `commit`, fetched for its target."""
    return job_program(deployment, settings.artifact_cache, lambda path: source.read(commit, path),
                       settings.file_roots, _stores(target),
                       _python_site(settings, target, client, deployment))


def _python_site(settings: Settings, target: DeploymentTarget, client: FlinkClient,
                 deployment: Deployment) -> PythonSite | None:
    """Where the target runs a PYTHON deployment's job (None for other kinds)."""
    if deployment.spec.template.spec.artifact.kind != ArtifactKind.PYTHON:
        return None
    local = target.spec.local is not None
    return PythonSite(local, settings.workdir / "python",
                      None if local else client.version())


def _dependency_jars(settings: Settings, source: SpecRepository, commit: str,
                     loaded: LoadResult, deployment: Deployment) -> list[Path]:
    """The deployment's additionalDependencies as local files (for the SQL check)."""
    target = loaded.targets.get(deployment.spec.deployment_target_name)
    return dependency_jars(deployment, settings.artifact_cache,
                           lambda path: source.read(commit, path), settings.file_roots,
                           _stores(target.spec if target else None))


def _stores(target: DeploymentTarget | None) -> ArtifactStores:
    return target.spec.artifact_stores if target is not None else ArtifactStores()


def _policy_input(desired: Deployment, target: DeploymentTarget | None, decided: Plan,
                  previous: DeploymentStatus | None, window: WindowVerdict,
                  commit_facts: dict | None) -> dict:
    kind = None if target is None else "local" if target.spec.local else "flink"
    applied = previous.status.applied_spec if previous else None
    return policy_input(desired, target.name if target else None, kind, decided.document(),
                        applied, window.document(), commit_facts)


def _signature(settings: Settings, source: SpecRepository, branch: str,
               status_head: str | None) -> tuple[SignatureVerdict, str | None]:
    """Whether the head of `branch` may be applied (`agent.signatures`), and, when commits are
    verified, the revision the agent last applied (the status branch's `specCommit`; None: none
    yet). Raises Untrusted when the head is not trusted and no trusted revision is left to
    apply."""
    trust = Trust.of(settings.allowed_signers, settings.trusted_gpg_keyring,
                     settings.verify_every_commit, settings.workdir)
    applied = applied_revision(source, status_head) if trust is not None else None
    signature = verify(source, trust, branch, source.resolve(branch), applied)
    if not signature.trusted and signature.applied is None:
        raise Untrusted(f"{signature.message()}: nothing is applied, and nothing is started "
                        "again, until a commit signed by a trusted key is pushed")
    return signature, applied


def _distrusted(source: SpecRepository, settings: Settings, caches: Caches, head: str,
                commit: str, loaded: LoadResult, files: dict[str, str],
                shard: Selector) -> set[str]:
    """The deployments (of this shard) that the untrusted `head` would change from `commit`,
    the revision applied instead: their spec, its target, the repo files their job is made of,
    or their spec's problems differ."""
    at_head = load_blobs(source.spec_blobs(head, settings.path), source.read_blobs,
                         caches.parsed)
    head_files = source.files(head)
    names = {name for name, located in [*at_head.deployments.items(),
                                        *loaded.deployments.items()]
             if shard.claims(_placed_at(located))}
    names |= {p.name for p in at_head.problems + loaded.problems
              if p.kind == "Deployment" and p.name}
    return {name for name in names if _footprint(at_head, head_files, name)
            != _footprint(loaded, files, name)}


def _footprint(loaded: LoadResult, files: dict[str, str], name: str) -> tuple:
    """What a revision says of one deployment: its spec, its target's, the blobs of its repo
    files, its spec's problems."""
    located = loaded.deployments.get(name)
    problems = tuple(p.message for p in loaded.problems_of("Deployment", name))
    if located is None:
        return None, problems
    target = loaded.targets.get(located.spec.spec.deployment_target_name)
    return (spec_document(located.spec), target.spec.spec if target else None,
            _repo_blobs(files, located.spec), problems)


def _applied_release(source: SpecRepository, item: Assessment) -> Release | None:
    """The applied spec, read again from git at the commit it was applied from (the status
    keeps secrets out, git has them), or None when there is none to go back to."""
    status = item.previous.status if item.previous else None
    if status is None or not (status.spec_commit and status.spec_file
                              and status.applied_spec_hash):
        return None
    text = source.read(status.spec_commit, status.spec_file)
    located = load({status.spec_file: text}).deployments.get(item.name) if text else None
    if located is None:
        return None
    return Release(located.spec, status.spec_commit, status.applied_spec_hash)


def _ui_bases(cycle: Cycle) -> dict[str, str]:
    """The web UI address of each target of the cycle, for the status pages' job links."""
    return ui_bases({name: located.spec for name, located in cycle.loaded.targets.items()})


def _commit_message(commit: str, outcomes: dict[str, Outcome]) -> str:
    lines = [f"status of {commit[:10]}"]
    lines += [f"{name}: {o.result.value} {o.message}" for name, o in sorted(outcomes.items())]
    return "\n\n".join(lines[:1] + ["\n".join(lines[1:])]) if len(lines) > 1 else lines[0]

