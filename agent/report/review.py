"""A plan for review -> Markdown (a pull-request comment) and JSON (for tools) (pure).

Summary first: one row per deployment with its action and what happens to its state (with the
verdict of its state check); then, folded per deployment, the changed fields, the steps in order,
each operator's state and the policy results. A value the deployment does not write itself
(from its DeploymentDefaults or SessionCluster) says where it came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from agent.diff import FieldChange
from agent.model.compatibility import Fate, StateCheck
from agent.plan import Plan
from agent.model.verdict import SignatureVerdict, Verdict, WindowVerdict

STATE_WORDS = {
    "UNCHANGED": "untouched",
    "SAVED": "kept in a savepoint",
    "DISCARDED": "**discarded**",
    "EMPTY": "starts empty",
    "RESTORED_FROM_SAVEPOINT": "restored from a savepoint",
    "RESTORED_FROM_CHECKPOINT": "restored from the latest retained checkpoint",
}

FATE_WORDS = {Fate.RESTORED: "restored", Fate.NEW: "new (starts empty)",
              Fate.DROPPED: "**dropped**", Fate.NOT_RESTORABLE: "**not restorable**"}


@dataclass(frozen=True)
class Review:
    """One deployment as a reviewer sees it."""

    name: str
    plan: Plan
    changes: tuple[FieldChange, ...] = ()
    verdict: Verdict = Verdict()
    problems: tuple[str, ...] = ()       # "file:line: message"
    offline: bool = False                # its cluster did not answer: planned from the status
    warnings: tuple[str, ...] = ()       # "file:line: message" (e.g. a SQL check not made)
    inherited: tuple[tuple[str, object, str], ...] = ()   # (path, value, the document it is of)
    window: WindowVerdict = WindowVerdict()   # what the sync windows say of its changes now

    def origin(self, path: str) -> str | None:
        """The document a changed field's new value is of, when not the deployment's own."""
        return {p: origin for p, _, origin in self.inherited}.get(path.split("[", 1)[0])

    @property
    def action(self) -> str:
        if self.problems:
            return "INVALID"
        return self.plan.action_name or "NONE"


@dataclass(frozen=True)
class ReviewSet:
    head: str
    base: str | None
    reviews: tuple[Review, ...] = field(default=())
    problems: tuple[str, ...] = ()       # "file:line: message", of no readable deployment
    signature: SignatureVerdict | None = None   # whether `sync` would apply the head

    @property
    def trusted(self) -> bool:
        return self.signature is None or self.signature.trusted

    @property
    def exit_code(self) -> int:
        """0 nothing to do, 2 changes planned, 1 an invalid spec, a policy denial, a change
        whose new job cannot restore its state, or a head not signed by a trusted key."""
        if self.problems or any(r.problems or r.verdict.denied or r.plan.refused
                                for r in self.reviews) or not self.trusted:
            return 1
        return 2 if any(r.plan.changes_anything or r.plan.pending or r.plan.deferred
                        for r in self.reviews) else 0


def render_json(reviews: ReviewSet) -> str:
    return json.dumps({
        "head": reviews.head,
        "base": reviews.base,
        "problems": list(reviews.problems),
        "signature": reviews.signature.document() if reviews.signature else None,
        "deployments": [{
            "name": r.name,
            "action": r.action,
            "state": r.plan.state,
            "reason": r.plan.reason,
            "offline": r.offline,
            "changes": [{"path": c.path, "old": c.old, "new": c.new,
                         **({"from": r.origin(c.path)} if r.origin(c.path) else {})}
                        for c in r.changes],
            "inherited": [{"path": path, "value": value, "from": origin}
                          for path, value, origin in r.inherited],
            "steps": r.plan.document()["steps"],
            "rollback": r.plan.rollback,
            "window": r.window.document(),
            **({"stateCheck": r.plan.state_check.document()} if r.plan.state_check else {}),
            "policy": {"denials": list(r.verdict.denials), "warnings": list(r.verdict.warnings)},
            "problems": list(r.problems),
            "warnings": list(r.warnings),
        } for r in reviews.reviews],
    }, indent=2, sort_keys=True, default=str) + "\n"


def render_markdown(reviews: ReviewSet) -> str:
    span = f"`{reviews.base[:10]}` → `{reviews.head[:10]}`" if reviews.base \
        else f"`{reviews.head[:10]}`"
    acting = [r for r in reviews.reviews
              if (r.plan.changes_anything or r.plan.pending or r.plan.deferred)
              and not r.plan.refused]
    lines = [f"### flink-gitops plan for {span}", ""] + _signature_lines(reviews.signature)
    if reviews.problems:
        lines += ["⛔ Spec files `sync` refuses (no deployment in them can be read as it is):",
                  ""] + [f"- `{p}`" for p in reviews.problems] + [""]
    if not reviews.reviews:
        return "\n".join(lines + ["No deployment is affected.", ""])
    lines += [f"{len(acting)} of {len(reviews.reviews)} deployments change.", "",
              "| Deployment | Action | Job state | Policies |", "|---|---|---|---|"]
    for review in reviews.reviews:
        deferred = review.plan.deferred
        until = f" until {deferred.local}" if deferred and deferred.local else ""
        lines.append(f"| {review.name} | {review.action}{until} | {_state_cell(review.plan)} | "
                     f"{_policy_cell(review)} |")
    offline = [r.name for r in reviews.reviews if r.offline]
    if offline:
        lines += ["", f"⚠️ Cluster not reachable for {', '.join(offline)}: planned from the "
                      "status branch (what the agent last saw)."]
    for review in reviews.reviews:
        lines += ["", "<details>", f"<summary><b>{review.name}</b>: {_headline(review)}"
                                   "</summary>", ""]
        lines += _details(review)
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _signature_lines(signature: SignatureVerdict | None) -> list[str]:
    """Whether `sync` would apply the head (nothing when commits are not verified)."""
    if signature is None or not signature.checked:
        return []
    if signature.trusted:
        return [f"🔏 Head `{signature.head[:10]}` is signed by {signature.signer}, a trusted "
                "signer.", ""]
    return [f"⛔ {signature.message()}: `sync` applies none of the changes below until a "
            "trusted key signs them.", ""]


def _headline(review: Review) -> str:
    if review.problems:
        return "invalid spec: nothing changes"
    if review.verdict.denied:
        return "denied by policy: nothing changes"
    return review.plan.summary()


def _details(review: Review) -> list[str]:
    lines = []
    if review.problems:
        lines += ["Problems:", ""] + [f"- `{p}`" for p in review.problems] + [""]
    if review.warnings:
        lines += ["Warnings:", ""] + [f"- ⚠️ {w}" for w in review.warnings] + [""]
    if review.changes:
        lines += ["Changes:", ""] + [f"- `{c.path}`: {_value(c.old)} → {_value(c.new)}"
                                     + (f" (from {review.origin(c.path)})"
                                        if review.origin(c.path) and c.new is not None else "")
                                     for c in review.changes] + [""]
    if review.inherited:
        lines += ["Values it does not write itself:", ""] + [
            f"- `{path}` = {_value(value)} from {origin}"
            for path, value, origin in review.inherited] + [""]
    if review.plan.steps:
        lines += ["Steps (not carried out):" if review.plan.refused else "Steps:", ""]
        lines += [f"{i}. {s.describe()}" for i, s in enumerate(review.plan.steps, 1)]
        if review.plan.rollback and not review.plan.refused:
            lines.append("   (if the new job cannot start: the previous spec is started again "
                         "from the same state)")
        lines.append("")
    if review.plan.deferred is not None:
        lines += [f"⏸️ {review.plan.reason}: it runs then, or earlier with `sync "
                  "--override-window`" + ("" if review.plan.deferred.manual_sync else
                                          " (not allowed by this window)") + ".", ""]
    lines.append(f"Job state: {_state_words(review.plan)}.")
    lines += _state_check(review.plan.state_check)
    if review.plan.reason and review.plan.deferred is None:
        lines.append(f"Why: {review.plan.reason}.")
    verdicts = ([f"- ⛔ {denial}" for denial in review.verdict.denials]
                + [f"- ⚠️ {warning}" for warning in review.verdict.warnings])
    return lines + ([""] + verdicts if verdicts else [])


def _state_words(plan: Plan) -> str:
    return STATE_WORDS["UNCHANGED"] if plan.refused else STATE_WORDS.get(plan.state, plan.state)


def _state_cell(plan: Plan) -> str:
    check = plan.state_check
    return f"{_state_words(plan)}; state: {check.headline}" if check else _state_words(plan)


def _state_check(check: StateCheck | None) -> list[str]:
    """The state check: its verdict and each operator's fate."""
    if check is None:
        return []
    lines = [f"State check: {'⛔ ' if check.refuses else ''}{check.summary}."]
    if check.compatibility is not None:
        lines += [f"Operators, against the state at `{check.compatibility.source}`:", ""]
        lines += [f"- {FATE_WORDS[v.fate]}: {v.operator}" + (f" ({v.why})" if v.why else "")
                  for v in check.compatibility.operators] + [""]
    return lines


def _policy_cell(review: Review) -> str:
    if review.verdict.denied:
        return f"⛔ {len(review.verdict.denials)} denied"
    if review.verdict.warnings:
        return f"⚠️ {len(review.verdict.warnings)} warning(s)"
    return "✅"


def _value(value) -> str:
    return "(unset)" if value is None else f"`{value}`"
