"""The bad-input corpus: what a push can turn a running deployment's spec file into, one case a
line, and the problem each must end as (never an exception, never a stopped job).

Each case takes the valid spec file of deployment `name` and returns the file's new content
(text, or bytes for encodings). `held`: the file no longer says which deployment it holds (the
deployment is held by its file, see `agent.deletion`) — otherwise the problem names the
deployment itself. Add a case by adding a line; every test over the corpus picks it up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from agent.load import MAX_FILE_BYTES


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[str, str], str | bytes]   # (valid text, deployment name) -> new content
    expect: str                               # a fragment of the problem's message
    held: bool = False                        # the name cannot be read from the file any more
    crashed_the_daemon: bool = False          # before issue 11: `flink-gitops run` died of it

    def __str__(self) -> str:
        return self.id


def sub(old: str, new: str) -> Callable[[str, str], str]:
    return lambda text, name: text.replace(old.format(name=name), new.format(name=name), 1)


def add(tail: str) -> Callable[[str, str], str]:
    return lambda text, name: text + tail


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefg", "bcdefgh"))

CASES = [
    Case("syntax-error", add("      parallelism: [oops\n"), "YAML syntax error", held=True),
    Case("kind-typo", sub("kind: Deployment", "kind: Deploymnet"), "did you mean 'Deployment'"),
    Case("kind-lowercase", sub("kind: Deployment", "kind: deployment"), "did you mean"),
    Case("no-kind", sub("kind: Deployment\n", ""), "no kind", held=True),
    Case("name-a-number", sub("name: {name}", "name: 123"), "metadata.name", held=True),
    Case("name-empty", sub("name: {name}", 'name: ""'), "metadata.name", held=True),
    Case("name-not-dns", sub("name: {name}", "name: Not_A_Label"), "metadata.name", held=True),
    Case("no-metadata", sub("metadata:\n  name: {name}\n", "other:\n  x: y\n"), "metadata",
         held=True),
    Case("int-tag-on-text", sub("parallelism: 1", "parallelism: !!int abc"),
         "'abc' is not a valid int", crashed_the_daemon=True),
    Case("python-tag", sub("parallelism: 1", "parallelism: !!python/name:os.system"),
         "is not allowed in a spec", crashed_the_daemon=True),
    Case("deep-nesting", sub("parallelism: 1", "parallelism: " + "[" * 20_000), "nested",
         held=True, crashed_the_daemon=True),
    Case("complex-key", add("? [a]\n: c\n"), "mapping key must be a plain value",
         crashed_the_daemon=True),
    Case("unbalanced-quote", sub("mainArgs: --rate 20 --keys 4", "mainArgs: \"--a 'b\""),
         "mainArgs cannot be split", crashed_the_daemon=True),
    Case("duplicate-key", add("spec: {state: CANCELLED}\n"),
         "duplicate key 'spec'"),
    Case("duplicate-name", sub("  name: {name}\n", "  name: {name}\n  name: other\n"),
         "duplicate key 'name'", held=True),
    Case("parallelism-true", sub("parallelism: 1", "parallelism: true"), "valid integer"),
    Case("parallelism-huge", sub("parallelism: 1", "parallelism: 1000000000000"),
         "less than or equal to 32768"),
    Case("parallelism-10e30", sub("parallelism: 1", "parallelism: 1000000000000000000000000000000"),
         "less than or equal to 32768"),
    Case("undefined-alias", sub("parallelism: 1", "parallelism: *nowhere"), "alias",
         held=True),
    Case("binary-label", sub("{{team: test}}", "{{team: !!binary zz}}"), "is not allowed"),
    Case("alias-bomb", add(BOMB), "more than 100,000 values"),
    Case("latin-1", lambda text, name: text.replace("test}", "caf\xe9}").encode("latin-1"),
         "not UTF-8", held=True),
    Case("utf-16", lambda text, name: text.encode("utf-16"), "UTF-16", held=True),
    Case("nul-byte", add("\0\n"), "NUL byte", held=True),
    Case("too-big", add("#" * (MAX_FILE_BYTES + 1) + "\n"), "over the limit", held=True),
    Case("a-list", lambda text, name: "- just\n- a list\n", "not a mapping", held=True),
    Case("jar-outside-repo", sub("jobs/counter.jar", "../../etc/passwd"),
         "leaves the spec repository"),
    Case("jar-missing", sub("jobs/counter.jar", "jobs/nothing.jar"),
         "no file jobs/nothing.jar in the spec repository"),
]
