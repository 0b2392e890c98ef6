"""Rego policies over Deployments and their plans, conftest style (I/O: the policies run in
`agent.rego_sandbox`'s worker process; what they are given and what they answer is decided
here).

Policies are `*.rego` files: the agent's built-in ones (this project's `policies/`) and those under
`policies/` in the spec repository. Each file is compiled on its own, so a verdict names the file
that gave it. Rules `deny` and `warn` of the package (default `main`) produce messages; `deny`
blocks the deployment's change, `warn` is reported. A policy that cannot be used — it does not
compile, fails when evaluated, or breaks a limit of the sandbox — denies: a policy the agent
cannot read lets nothing through. `--policy-package` naming a package no file declares is a
configuration error (a typo would disable every policy); a file of another package is a warning.

The input is the Deployment document plus `target` (its name and kind, never its secrets),
`plan` (the planned action, its steps and what happens to the job's state) and `previous` (the
applied spec, or null).

Rego is deterministic, so a policy set's answer to an input is remembered: policy sets are kept
per file content and remember their verdicts per input, and a cycle in which a deployment's
spec, plan and applied spec are unchanged asks the worker nothing. A set given a snapshot
directory also keeps its verdicts there (`save`), so a fresh process (cron's `sync`, a daemon
restarted, `plan` in CI) asks the worker only for inputs no process has asked before; a set one
of whose files broke a limit keeps nothing there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.logs import redact
from agent.memo import Memo
from agent.model.spec import Deployment
from agent.model.verdict import Verdict
from agent.rego_sandbox import Sandbox
from agent.snapshots import append_snapshot, load_snapshot, prune_snapshots, save_snapshot

log = logging.getLogger(__name__)
BUILT_IN = Path(__file__).resolve().parent.parent / "policies"
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_ANSWERS_KEPT = 50_000
MAX_MESSAGE_CHARS = 1000     # a deny or warn message longer than this is cut
_SETS_KEPT = 8
SNAPSHOT_KIND, SNAPSHOT_VERSION = "policy verdicts", 2


@dataclass
class PolicySet:
    """Compiled policy files of one package, in their sandbox, with the verdicts given so far
    (and those of earlier processes, from its `snapshot` file)."""

    sandbox: Sandbox
    warnings: tuple[str, ...] = ()        # files of other packages: not evaluated
    snapshot: Path | None = None          # where its verdicts are kept between processes
    asked: int = 0                        # inputs the worker evaluated (tests, benchmarks)
    reads_commit: bool = False            # a policy names `commit`: its input has the commit
                                          # (else not: its verdicts then outlive commits)
    _answers: Memo[bytes, Verdict] = field(
        repr=False, default_factory=lambda: Memo("policy verdicts", _ANSWERS_KEPT))
    _unsaved: dict[str, list] = field(default_factory=dict, repr=False)   # since `save`

    def __post_init__(self) -> None:
        if self.snapshot is not None:
            for key, (denials, warnings) in load_snapshot(self.snapshot, SNAPSHOT_KIND,
                                                          SNAPSHOT_VERSION).items():
                self._answers.put(bytes.fromhex(key), Verdict(tuple(denials), tuple(warnings)))

    def verdict(self, document: dict[str, Any]) -> Verdict:
        key = input_digest(document)
        return self._answers.get_or(key, lambda: self._ask(key, document))

    def save(self) -> None:
        """Adds the verdicts given since the last save to the snapshot file (the file is written
        whole only when it cannot take them)."""
        if self.snapshot is None or not self._unsaved or self.sandbox.broken:
            return
        if not append_snapshot(self.snapshot, SNAPSHOT_KIND, SNAPSHOT_VERSION, self._unsaved):
            save_snapshot(self.snapshot, SNAPSHOT_KIND, SNAPSHOT_VERSION, {
                key.hex(): _entry(v) for key, v in self._answers.items()})
            prune_snapshots(self.snapshot.parent, "policy-verdicts-*.jsonl", _SETS_KEPT)
        self._unsaved = {}

    def _ask(self, key: bytes, document: dict[str, Any]) -> Verdict:
        verdict = self._evaluate(document)
        self._unsaved[key.hex()] = _entry(verdict)
        return verdict

    def _evaluate(self, document: dict[str, Any]) -> Verdict:
        self.asked += 1
        answers = self.sandbox.evaluate(document)
        denials, warnings = list(self.sandbox.broken.values()), []
        for path, answer in answers.items():
            if "error" in answer:
                denials.append(f"{path}: {answer['error']}; the change is held until the "
                               "policy is fixed")
                continue
            denials += [_message(path, m) for m in answer["deny"]]
            warnings += [_message(path, m) for m in answer["warn"]]
        return Verdict(tuple(denials), tuple(warnings))


def _entry(verdict: Verdict) -> list:
    return [list(verdict.denials), list(verdict.warnings)]


def policy_sets() -> Memo[tuple, PolicySet]:
    """A memo of compiled policy sets by file content, closing the worker of a set it drops."""
    return Memo("policy sets", _SETS_KEPT, on_evict=lambda policies: policies.sandbox.close())


def compile_policies(files: dict[str, str], package: str = "main",
                     sets: Memo[tuple, PolicySet] | None = None,
                     snapshots: Path | None = None) -> PolicySet:
    """Compiles every policy file (path -> Rego text) of `package`; a file that does not compile
    denies every change, saying its line and why. With `sets` (see `policy_sets`), the same
    files compile to the same remembered policy set; with `snapshots` (a directory), the set
    starts from the verdicts an earlier process kept there for the same files."""
    key = (package, tuple(sorted(files.items())))
    found = sets.get(key) if sets is not None else None
    if found is not None:
        return found
    declared = {path: _declared_package(text) for path, text in files.items()}
    if files and package not in declared.values():
        raise ConfigError(f"--policy-package {package!r}: no policy file declares that "
                          f"package (they declare {sorted(set(declared.values()) - {None})})")
    ours = {path: text for path, text in sorted(files.items())
            if declared[path] in (package, None)}
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    compiled = PolicySet(Sandbox(ours, package), tuple(
        f"{path}: package {found} is not --policy-package {package}: its rules are not "
        "evaluated" for path, found in sorted(declared.items()) if found not in (package, None)),
        snapshots / f"policy-verdicts-{digest}.jsonl" if snapshots is not None else None,
        reads_commit=any(_READS_COMMIT.search(text) for text in ours.values()))
    for warning in compiled.warnings:
        log.warning("%s", warning)
    return sets.put(key, compiled) if sets is not None else compiled


_READS_COMMIT = re.compile(r"\bcommit\b")


def evaluate(policies: PolicySet, document: dict[str, Any]) -> Verdict:
    return policies.verdict(document)


def built_in_policies() -> dict[str, str]:
    """The agent's own policies: `policies/*.rego` of this project (not their tests)."""
    return {f"(built-in) {p.name}": p.read_text() for p in sorted(BUILT_IN.glob("*.rego"))
            if not p.name.endswith("_test.rego")}


def with_built_ins(repo_policies: dict[str, str]) -> dict[str, str]:
    """The policies a deployment is judged by: the built-in ones and the spec repository's."""
    return {**built_in_policies(), **repo_policies}


def input_digest(document: dict[str, Any]) -> bytes:
    """A digest of a policy input: equal inputs, equal verdicts (pure)."""
    return hashlib.sha1(json.dumps(document, sort_keys=True, default=str).encode()).digest()


def policy_input(deployment: Deployment, target: str | None, target_kind: str | None,
                 plan: dict[str, Any], previous: dict[str, Any] | None,
                 window: dict[str, Any] | None = None,
                 commit: dict[str, Any] | None = None) -> dict[str, Any]:
    """The input a policy sees: the Deployment, its target (no secrets), the plan, the applied
    spec, what the sync windows say of its changes now, and the commit applied
    (`agent.signatures.commit_input`)."""
    document = deployment.model_dump(mode="json", by_alias=True, exclude={"status"})
    return {**document, "target": {"name": target, "kind": target_kind}, "plan": plan,
            "previous": previous, "window": window, "commit": commit}


def _message(path: str, message: str) -> str:
    """A policy's message as reported: its file, at most MAX_MESSAGE_CHARS, redacted."""
    if len(message) > MAX_MESSAGE_CHARS:
        message = f"{message[:MAX_MESSAGE_CHARS]}… ({len(message):,} characters, cut)"
    return redact(f"{path}: {message}")


def _declared_package(text: str) -> str | None:
    """The package a policy file declares (None when it declares none: it does not compile,
    and is compiled to say so)."""
    match = _PACKAGE.search(text)
    return match.group(1) if match else None
