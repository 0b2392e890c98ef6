"""Shards: which deployments an agent run with `--shard-selector` acts on (pure).

A selector is Kubernetes' equality-based label selector: requirements separated by commas,
each `key=value`, `key==value` or `key!=value`, all of which must hold. `key!=value` holds for
a deployment without the label, as in Kubernetes. The key `target` is reserved: it is the name
of the deployment's DeploymentTarget, not a label (`target=prod-cluster`). The empty selector
selects everything: an agent run without `--shard-selector`.

A deployment's placement (its labels and target) is read from its spec when the spec repo has
it, else from its last status document (a deployment deleted from git is still its shard's to
delete); a refused spec that was never applied has none, and no shard but the whole repo's
claims it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Mapping, NamedTuple

from agent.errors import ConfigError

TARGET_KEY = "target"   # reserved: the deployment's DeploymentTarget, not a label
# Kubernetes' label syntax: an optional DNS-subdomain prefix and "/", then a name of at most
# 63 characters; values the same without the prefix, and may be empty
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"^(?:[a-z0-9](?:[a-z0-9.-]{{0,251}}[a-z0-9])?/)?{_NAME}$")
_VALUE = re.compile(rf"^(?:{_NAME})?$")
_REQUIREMENT = re.compile(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)\s*$")


class Placement(NamedTuple):
    """What a selector looks at of one deployment."""

    labels: Mapping[str, str]
    target: str | None


class Requirement(NamedTuple):
    key: str
    equal: bool      # `=` / `==` (True) or `!=` (False)
    value: str

    def holds(self, placement: Placement) -> bool:
        found = placement.target if self.key == TARGET_KEY else placement.labels.get(self.key)
        return (found == self.value) == self.equal

    def __str__(self) -> str:
        return f"{self.key}{'=' if self.equal else '!='}{self.value}"


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> Selector:
        """The selector `text` writes (None or blank: everything); ConfigError naming the
        requirement that is not `key=value`, `key==value` or `key!=value`."""
        if text is None or not text.strip():
            return cls()
        requirements = []
        for part in text.split(","):
            found = _REQUIREMENT.match(part)
            if found is None:
                raise ConfigError(f"shard selector {text!r}: {part.strip()!r} is not key=value, "
                                  "key==value or key!=value (Kubernetes' equality-based "
                                  "selector; set-based requirements are not supported)")
            key, operator, value = found.groups()
            if not _KEY.match(key):
                raise ConfigError(f"shard selector {text!r}: {key!r} is not a label key")
            if not _VALUE.match(value):
                raise ConfigError(f"shard selector {text!r}: {value!r} is not a label value "
                                  "(63 characters at most: letters, digits, '-', '_', '.')")
            requirements.append(Requirement(key, operator != "!=", value))
        return cls(tuple(sorted(set(requirements))))

    @property
    def everything(self) -> bool:
        return not self.requirements

    def claims(self, placement: Placement | None) -> bool:
        """Whether the deployment placed so is this shard's; one whose placement is unknown is
        only the whole repo's."""
        if placement is None:
            return self.everything
        return all(requirement.holds(placement) for requirement in self.requirements)

    @property
    def digest(self) -> str:
        """A short name of the selector for refs (equal selectors, however written, share it)."""
        return hashlib.sha256(str(self).encode()).hexdigest()[:12]

    def __str__(self) -> str:
        """The selector in one canonical form (sorted, `=` and `!=`); empty for everything."""
        return ",".join(str(requirement) for requirement in self.requirements)

    def shown(self) -> str:
        """For people: the selector, or what the empty one means."""
        return f"`{self}`" if self.requirements else "the whole repo (no --shard-selector)"
