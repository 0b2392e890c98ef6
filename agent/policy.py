"""Rego policies over Deployments and their plans, conftest style (pure, given the policies).

Policies are `*.rego` files: the agent's built-in ones (this project's `policies/`) and those under
`policies/` in the spec repository. Each file is compiled on its own with regopy (OPA's Rego, no
server), so a verdict names the file that gave it. Rules `deny` and `warn` of the package (default
`main`) produce messages; `deny` blocks the deployment's change, `warn` is reported.

The input is the Deployment document plus `target` (its name and kind, never its secrets),
`plan` (the planned action, its steps and what happens to the job's state) and `previous` (the
applied spec, or null).

Rego is deterministic, so a policy's answer to an input is remembered: compiled policies are kept
per file content and each remembers its verdicts per input, and a cycle in which a deployment's
spec, plan and applied spec are unchanged asks the interpreter nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regopy import Interpreter, RegoError

from agent.errors import PermanentError

BUILT_IN = Path(__file__).resolve().parent.parent / "policies"
_ERROR = re.compile(r"\(error \d+:(?P<file>[^|]+)\|(?P<offset>\d+)\|\d+\s+"
                    r"\(errormsg \d+:(?P<message>[^\n]*)\)")


_ANSWERS_KEPT = 50_000
_COMPILED: dict[tuple, list[Policy]] = {}
_STDOUT_LOCK = threading.Lock()


class PolicyError(PermanentError):
    """A policy file that does not compile, or fails when evaluated; names file and line."""


@dataclass(frozen=True)
class Verdict:
    """What the policies say of one deployment."""

    denials: tuple[str, ...] = ()     # "<file>: <message>"
    warnings: tuple[str, ...] = ()

    @property
    def denied(self) -> bool:
        return bool(self.denials)


@dataclass
class Policy:
    """One compiled policy file; one that does not compile keeps its `error` and denies every
    change (a policy the agent cannot read lets nothing through)."""

    path: str
    package: str
    _interpreter: Interpreter = field(repr=False, default=None)
    _answers: dict[bytes, tuple[list[str], list[str]]] = field(repr=False, default_factory=dict)
    error: str | None = None

    def evaluate(self, document: dict[str, Any],
                 key: bytes | None = None) -> tuple[list[str], list[str]]:
        """(deny, warn) messages for `document`, whose digest `key` is computed if not given.
        A policy that fails denies, with its error as the message."""
        key = key or input_digest(document)
        if key not in self._answers:
            self._interpreter.set_input(document)
            if len(self._answers) >= _ANSWERS_KEPT:
                self._answers.clear()
            try:
                self._answers[key] = (self._rule("deny"), self._rule("warn"))
            except PolicyError as error:
                return [f"{error}; the change is held until the policy is fixed"], []
        deny, warn = self._answers[key]
        return list(deny), list(warn)

    def _rule(self, rule: str) -> list[str]:
        try:
            output = self._interpreter.query(f"data.{self.package}.{rule}")
        except RegoError as error:
            raise PolicyError(f"evaluating {rule} failed: {_reason(error)}") from None
        if not output.ok():   # e.g. a rule given two different values
            raise PolicyError(f"evaluating {rule} failed: Rego ended in an error (a rule with "
                              "conflicting values?)")
        text = str(output)
        if text == "undefined":
            return []
        try:
            values = json.loads(text)["expressions"][0]
        except (ValueError, LookupError, TypeError):
            raise PolicyError(f"evaluating {rule} failed: Rego answered {text[:200]!r}") from None
        messages = values.keys() if isinstance(values, dict) else values  # Rego v0 or v1 sets
        return sorted(str(m) for m in messages)


def compile_policies(files: dict[str, str], package: str = "main") -> list[Policy]:
    """Compiles every policy file (path -> Rego text); a file that does not compile denies every
    change, saying its line and why. The same files compile to the same (remembered) policies."""
    key = (package, tuple(sorted(files.items())))
    if key not in _COMPILED:
        if len(_COMPILED) >= 8:
            _COMPILED.clear()
        _COMPILED[key] = _compile(files, package)
    return _COMPILED[key]


def _compile(files: dict[str, str], package: str) -> list[Policy]:
    policies = []
    for path, text in sorted(files.items()):
        interpreter = Interpreter()
        try:
            with _stdout_to_stderr():
                interpreter.add_module(path, text)
        except RegoError as error:
            match = _ERROR.search(str(error))
            line = text[:int(match["offset"])].count("\n") + 1 if match else 1
            policies.append(Policy(path, package, error=(
                f"{path}:{line}: policy does not compile: "
                f"{match['message'] if match else _reason(error)}; every change is held until "
                "it is fixed")))
            continue
        policies.append(Policy(path, package, interpreter))
    return policies


@contextmanager
def _stdout_to_stderr():
    """The Rego engine prints a policy's compile errors on the process's standard output (its
    C library writes to file descriptor 1), where they would corrupt `plan --format json`: they
    go to standard error instead (the error itself is reported as a denial)."""
    sys.stdout.flush()
    with _STDOUT_LOCK:
        saved = os.dup(1)
        try:
            os.dup2(2, 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def built_in_policies() -> dict[str, str]:
    """The agent's own policies: `policies/*.rego` of this project (not their tests)."""
    return {f"(built-in) {p.name}": p.read_text() for p in sorted(BUILT_IN.glob("*.rego"))
            if not p.name.endswith("_test.rego")}


def evaluate(policies: list[Policy], document: dict[str, Any]) -> Verdict:
    denials, warnings = [], []
    key = input_digest(document)
    for policy in policies:
        if policy.error is not None:
            denials.append(policy.error)
            continue
        deny, warn = policy.evaluate(document, key)
        denials += [f"{policy.path}: {m}" for m in deny]
        warnings += [f"{policy.path}: {m}" for m in warn]
    return Verdict(tuple(denials), tuple(warnings))


def input_digest(document: dict[str, Any]) -> bytes:
    """A digest of a policy input: equal inputs, equal verdicts (pure)."""
    return hashlib.sha1(json.dumps(document, sort_keys=True, default=str).encode()).digest()


def policy_input(document: dict[str, Any], target: str | None, target_kind: str | None,
                 plan: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """The input a policy sees: the Deployment, its target (no secrets), the plan, the applied
    spec."""
    return {**document, "target": {"name": target, "kind": target_kind}, "plan": plan,
            "previous": previous}


def _reason(error: RegoError) -> str:
    match = _ERROR.search(str(error))
    return match["message"] if match else str(error).strip().splitlines()[0]
