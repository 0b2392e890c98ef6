"""The status branch: read the documents of the last cycle, commit and push new ones (I/O: git).

An orphan branch that only the agent writes. Commits are made with git's plumbing straight into
the agent's mirror of the spec repository (no work tree), one per cycle in which a file changed,
and pushed to the spec repository's origin.
"""

from __future__ import annotations

import yaml

from agent.errors import SourceError, StatusPushRejected
from agent.model.status import DeploymentStatus
from agent.source import REMOTE, SpecRepository

AUTHOR = {"GIT_AUTHOR_NAME": "flink-gitops", "GIT_AUTHOR_EMAIL": "flink-gitops@localhost",
          "GIT_COMMITTER_NAME": "flink-gitops", "GIT_COMMITTER_EMAIL": "flink-gitops@localhost"}


def read_statuses(source: SpecRepository, branch: str) -> dict[str, DeploymentStatus]:
    """The deployment status documents at the head of the status branch (none if no branch)."""
    head = source.head(branch)
    if head is None:
        return {}
    tree = source.repo.commit(head).tree
    if "deployments" not in tree:
        return {}
    documents = {}
    for blob in tree["deployments"].blobs:
        if blob.name.endswith(".yaml"):
            document = DeploymentStatus.model_validate(yaml.safe_load(blob.data_stream.read()))
            documents[document.name] = document
    return documents


def write(source: SpecRepository, branch: str, files: dict[str, bytes], message: str) -> str | None:
    """Commits `files` as the whole content of the status branch and pushes it.

    Returns the new commit, or None when the content equals the branch head's (no commit).
    """
    head = source.head(branch)
    tree = _tree(source, files)
    if head is not None and source.git("rev-parse", f"{head}^{{tree}}") == tree:
        return None
    parents = ["-p", head] if head else []
    commit = source.git("commit-tree", tree, *parents, "-m", message, env=AUTHOR)
    try:
        source.git("push", "--quiet", REMOTE, f"{commit}:refs/heads/{branch}")
    except SourceError as error:
        raise StatusPushRejected(f"status push to {branch} was refused: {error}") from None
    source.git("update-ref", f"refs/remotes/{REMOTE}/{branch}", commit)
    return commit


def _tree(source: SpecRepository, files: dict[str, bytes]) -> str:
    """Writes the blobs and trees of `files` (nested paths allowed); returns the root tree."""
    entries: dict[str, dict | bytes] = {}
    for path, content in files.items():
        *folders, name = path.split("/")
        node = entries
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = content
    return _write_tree(source, entries)


def _write_tree(source: SpecRepository, entries: dict) -> str:
    lines = []
    for name, value in sorted(entries.items()):
        if isinstance(value, dict):
            lines.append(f"040000 tree {_write_tree(source, value)}\t{name}")
        else:
            blob = source.git("hash-object", "-w", "--stdin", input=value)
            lines.append(f"100644 blob {blob}\t{name}")
    return source.git("mktree", input=("\n".join(lines) + "\n").encode())
