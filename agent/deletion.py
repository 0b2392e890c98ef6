"""Deployments missing from the specs -> deleted, held, or guarded (pure).

DESIGN §5.8: nothing the agent could not read changes a job, so a deployment is deleted only on
positive evidence. It is *held* — left as it is, INVALID, with the unreadable file's problem —
while its file is still there but cannot be read (a syntax error, not UTF-8, too big, a document
whose kind or name cannot be read), or while any unreadable file mentions its name (it may have
moved there). Only a deployment that no readable file holds and no unreadable file may hold is
deleted. A cycle that would delete more deployments than the limit deletes none (the
mass-deletion guard: a wrong `--path` or a folder moved by mistake stops no job).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.load import LoadResult, SpecProblem
from agent.model.status import DeploymentStatus

GUARD = "(built-in) deletion guard"


@dataclass(frozen=True)
class Deletions:
    """What becomes of the deployments the status knows and no readable spec holds."""

    held: dict[str, tuple[SpecProblem, ...]] = field(default_factory=dict)  # name -> why
    deleted: tuple[str, ...] = ()
    limit: int = 1

    @property
    def guarded(self) -> bool:
        """More deletions than the limit: none of them is carried out."""
        return len(self.deleted) > self.limit

    def guard_message(self) -> str:
        return (f"{GUARD}: {len(self.deleted)} deletions held; the limit is {self.limit}; "
                "confirm with `--max-deletions`")


def deletion_limit(known: int, max_deletions: int | None) -> int:
    """`--max-deletions`, by default the larger of 1 and 10 % of the deployments known."""
    return max_deletions if max_deletions is not None else max(1, known // 10)


def deletions(loaded: LoadResult, previous: dict[str, DeploymentStatus],
              max_deletions: int | None = None) -> Deletions:
    """Sorts the deployments of `previous` (not yet deleted) that no document of `loaded`
    holds into held and deleted."""
    known = {name: d for name, d in previous.items() if not d.status.deleted}
    named = set(loaded.deployments) | {p.name for p in loaded.problems
                                       if p.kind == "Deployment" and p.name}
    unreadable = loaded.unreadable()
    held, deleted = {}, []
    for name in sorted(set(known) - named):
        spec_file = known[name].status.spec_file
        holders = [path for path, parsed in unreadable.items()
                   if path == spec_file or parsed.may_hold(name)]
        if not holders:
            deleted.append(name)
            continue
        held[name] = tuple(_held_by(name, path, unreadable[path].unreadable[0], spec_file)
                           for path in holders)
    return Deletions(held, tuple(deleted), deletion_limit(len(known), max_deletions))


def _held_by(name: str, path: str, reason: SpecProblem, spec_file: str | None) -> SpecProblem:
    how = ("the file held this deployment" if path == spec_file
           else "the file may hold this deployment now")
    return SpecProblem(reason.file, reason.line,
                       f"{reason.message} — {how}: it is left as it is until the file can be "
                       "read", "Deployment", name)
