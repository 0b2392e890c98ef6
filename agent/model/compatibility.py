"""Whether a new job can take the state it would restore, operator by operator (pure).

The new job's operators come from its job graph, built without running it; the state from the
`_metadata` of the savepoint or checkpoint the plan restores (`agent.flink.compatibility`).
Flink's own rules on restore (`Checkpoints.loadAndValidateCheckpoint`) decide the verdicts:

- a saved operator is *restored* by the new operator whose id (from its uid, or its uid hash)
  is the same, unless that operator's max parallelism is set and differs: *not restorable*;
- saved state that no new operator claims is *dropped*: Flink refuses to start unless
  `allowNonRestoredState`, and then that state is gone (saved operators without state, such as
  a stateless sink's, are no concern);
- a new operator that no saved state names starts *new*, with empty state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Operator:
    """An operator of the new job's graph."""

    id: str                        # the id Flink derives from its uid (or its structure)
    uid_hash: str | None           # an id set directly (setUidHash), if any
    uid: str | None
    name: str
    max_parallelism: int           # -1: not set (Flink takes the savepoint's)

    @property
    def shown(self) -> str:
        return f"{self.name} (uid `{self.uid}`)" if self.uid else f"{self.name} (no uid)"


@dataclass(frozen=True)
class SavedState:
    """An operator's entry in a savepoint's or checkpoint's metadata."""

    id: str
    uid: str | None
    name: str | None
    max_parallelism: int
    has_state: bool

    @property
    def shown(self) -> str:
        name = self.name or f"operator {self.id}"
        return f"{name} (uid `{self.uid}`)" if self.uid else name


class Fate(StrEnum):
    RESTORED = "RESTORED"
    DROPPED = "DROPPED"
    NEW = "NEW"
    NOT_RESTORABLE = "NOT_RESTORABLE"


@dataclass(frozen=True)
class OperatorVerdict:
    fate: Fate
    operator: str                  # as readers know it: its name and uid
    why: str = ""


@dataclass(frozen=True)
class Compatibility:
    """The verdict on restoring `source` into the new job: each operator's fate, and whether
    Flink would start the job from it."""

    source: str
    operators: tuple[OperatorVerdict, ...]
    allow_non_restored_state: bool

    def of(self, fate: Fate) -> list[OperatorVerdict]:
        return [verdict for verdict in self.operators if verdict.fate == fate]

    @property
    def restorable(self) -> bool:
        return not self.of(Fate.NOT_RESTORABLE) and (
            self.allow_non_restored_state or not self.of(Fate.DROPPED))

    @property
    def summary(self) -> str:
        """`compatible`, `N operator(s) would be dropped`, or `not restorable (why)`."""
        dropped = self.of(Fate.DROPPED)
        if self.of(Fate.NOT_RESTORABLE):
            first = self.of(Fate.NOT_RESTORABLE)[0]
            return f"not restorable ({first.operator}: {first.why})"
        if dropped and not self.allow_non_restored_state:
            return (f"not restorable ({_count(dropped)} would be dropped: "
                    f"{', '.join(v.operator for v in dropped)}; allowNonRestoredState: true "
                    "would drop it)")
        if dropped:
            return f"{_count(dropped)} would be dropped: " + ", ".join(v.operator
                                                                       for v in dropped)
        return "compatible"


class StateVerdict(StrEnum):
    COMPATIBLE = "COMPATIBLE"            # every saved operator's state is restored
    DROPS_STATE = "DROPS_STATE"          # allowNonRestoredState: some saved state is dropped
    NOT_RESTORABLE = "NOT_RESTORABLE"    # Flink would refuse to start the job from it
    UNCHECKED = "UNCHECKED"              # it could not be found out here (why: `unchecked`)


@dataclass(frozen=True)
class StateCheck:
    """The state check of a plan whose new job restores state: the verdict, or why there is
    none. A plan restoring the state of a job of its very spec needs no check (`same_job`)."""

    compatibility: Compatibility | None = None
    unchecked: str | None = None
    same_job: bool = False

    @property
    def verdict(self) -> StateVerdict:
        found = self.compatibility
        if found is None:
            return StateVerdict.COMPATIBLE if self.same_job else StateVerdict.UNCHECKED
        if not found.restorable:
            return StateVerdict.NOT_RESTORABLE
        return StateVerdict.DROPS_STATE if found.of(Fate.DROPPED) else StateVerdict.COMPATIBLE

    @property
    def refuses(self) -> bool:
        """The plan is not carried out: Flink would refuse the state, or drop state it may not."""
        return self.verdict == StateVerdict.NOT_RESTORABLE

    @property
    def headline(self) -> str:
        """The verdict in a few words: compatible, N operators would be dropped, not
        restorable, unchecked."""
        if self.verdict == StateVerdict.DROPS_STATE:
            return f"{_count(self.compatibility.of(Fate.DROPPED))} would be dropped"
        return self.verdict.value.lower().replace("_", " ")

    @property
    def summary(self) -> str:
        """`compatible`, `N operator(s) would be dropped`, `not restorable (why)` or
        `unchecked (why)`."""
        if self.compatibility is not None:
            return self.compatibility.summary
        if self.same_job:
            return "compatible (the state is of a job of this same spec)"
        return f"unchecked ({self.unchecked})"

    def document(self) -> dict:
        """The check as data (for policies and `plan --format json`)."""
        found = self.compatibility
        return {"verdict": self.verdict.value, "summary": self.summary,
                **({"source": found.source, "operators": [
                    {"fate": v.fate.value, "operator": v.operator, **({"why": v.why} if v.why
                                                                      else {})}
                    for v in found.operators]} if found else {})}


def compatibility(operators: list[Operator], states: list[SavedState], source: str,
                  allow_non_restored_state: bool) -> Compatibility:
    """The verdict of restoring `states` (read from `source`) into a job of `operators`."""
    by_id: dict[str, Operator] = {}
    for operator in operators:
        by_id[operator.id] = operator
        if operator.uid_hash:
            by_id[operator.uid_hash] = operator
    verdicts, claimed = [], set()
    for saved in states:
        operator = by_id.get(saved.id)
        if operator is None:
            if saved.has_state:
                verdicts.append(OperatorVerdict(Fate.DROPPED, saved.shown,
                                                "no operator of the new job has its id"))
            continue
        claimed.add(operator.id)
        if operator.max_parallelism not in (-1, saved.max_parallelism):
            verdicts.append(OperatorVerdict(
                Fate.NOT_RESTORABLE, operator.shown,
                f"max parallelism {operator.max_parallelism}, the state's "
                f"{saved.max_parallelism}"))
        elif saved.has_state:
            verdicts.append(OperatorVerdict(Fate.RESTORED, operator.shown))
    verdicts += [OperatorVerdict(Fate.NEW, operator.shown) for operator in operators
                 if operator.id not in claimed]
    return Compatibility(source, tuple(verdicts), allow_non_restored_state)


def _count(verdicts: list) -> str:
    return f"{len(verdicts)} operator's state" if len(verdicts) == 1 \
        else f"{len(verdicts)} operators' state"
