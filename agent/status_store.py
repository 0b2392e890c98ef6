"""The status branch: read the documents of the last cycle, commit and push new ones (I/O: git).

The git side of the agent is three modules: `source` reads the spec repository, `lease` takes
turns with other agents, and this store keeps the status — every status commit is made here.
An orphan branch that only the agent writes — or the agents of a repo's shards, each its own
documents: a write is composed for the head it lands on (`Compose`), with the other shards' files
carried over by blob id (`StoredBlob`), and composed again on a new head when its push loses a
race. Commits are made with git's plumbing straight into the agent's mirror of the spec repository
(no work tree), one per cycle in which a file changed, and pushed to the spec repository's origin.

Thousands of documents cost no more git processes than one: blob and tree ids are computed here
(git's object format is a SHA-1 of a header and the content), only objects the branch head does
not hold are written, straight into the mirror's object store, and documents are read back by
blob id, each parsed once per process.

Beside the branch, the daemon's heartbeat (`beat`, `read_heartbeat`): a ref of its own,
`refs/flink-gitops/heartbeat/<status branch>`, pointing at a parentless commit of the empty tree
that says when and who (`report.freshness`). A beat writes that commit in process and costs one
`git push` of it; it never touches the status branch.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime
from io import BytesIO
from typing import Callable

import yaml
from gitdb import IStream, LooseObjectDB
from pydantic import ValidationError

from agent.errors import SourceError, StatusKept, StatusPushRejected
from agent.logs import redact, redact_bytes
from agent.memo import Memo
from agent.model.status import DeploymentStatus
from agent.report.dashboard import document_path
from agent.report.freshness import Freshness, Heartbeat, freshness, heartbeat_of
from agent.source import PENDING_STATUS_REF, REMOTE, SpecRepository

log = logging.getLogger(__name__)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024   # a status document above this is not read
MAX_DOCUMENT_VALUES = 200_000          # nor one of more values (aliases counted at each use)

AUTHOR = {"GIT_AUTHOR_NAME": "flink-gitops", "GIT_AUTHOR_EMAIL": "flink-gitops@localhost",
          "GIT_COMMITTER_NAME": "flink-gitops", "GIT_COMMITTER_EMAIL": "flink-gitops@localhost"}
HEARTBEAT_REFS = "refs/flink-gitops/heartbeat"   # + "/<status branch>": the daemon's heartbeat
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"       # git's id of the empty tree
RACES = 8   # races a status push may lose (the head moved) before it gives up, when the
            # cycle acted or is a shard's (whose documents no other agent writes)


class StoredBlob(str):
    """A file of the status branch given by the id of a blob the mirror holds (another shard's
    document, carried over as it is)."""


Files = dict[str, "bytes | StoredBlob"]   # the status branch's content: path -> file
Compose = Callable[[], Files]   # the files of the branch, made for its head as it is now


class StatusStore:
    """The status branch `branch` of the spec repository `source`: read and written whole."""

    def __init__(self, source: SpecRepository, branch: str, documents: Memo | None = None):
        """`documents`: blob id -> parsed document, of the newest head read (kept across cycles
        when the caller keeps it)."""
        self.source = source
        self.branch = branch
        self.documents = documents if documents is not None else Memo("status documents",
                                                                      1_000_000)

    def head(self) -> str | None:
        """The status branch's commit (as last fetched), or None before the first cycle."""
        return self.source.head(self.branch)

    def read(self) -> tuple[dict[str, DeploymentStatus], dict[str, str]]:
        return read_statuses(self.source, self.branch, self.documents)

    def write(self, compose: Compose, message: str, races: int = 0) -> str | None:
        """Commits the files `compose` makes for the branch's head as its whole content and
        pushes them; returns the new commit, or None when nothing changed (no commit). A push
        that lost a race is made again on top of the new head, composed anew, up to `races`
        times (agents of other shards write their documents meanwhile); then
        StatusPushRejected."""
        made, lost = commit(self.source, compose(), message, self.head()), 0
        while made is not None:
            try:
                push(self.source, self.branch, made)
                return made
            except StatusPushRejected:
                if lost == races:
                    raise
                lost += 1
                self.source.fetch()
                made = commit(self.source, compose(), message, self.head())
        return None

    def remember(self, files: dict[str, bytes], documents: list[DeploymentStatus]) -> None:
        """`documents`, just written as `files`, are what the next read of the branch finds:
        kept by blob id, they are not parsed again (one the redaction changed is read back)."""
        for document in documents:
            content = files[document_path(document.name)]
            if redact_bytes(content) == content:
                self.documents.put(object_id(b"blob", content), document)

    def write_or_keep(self, compose: Compose, message: str) -> str | None:
        """`write` for a cycle that acted: its documents are the truth. A push that lost a race
        is made again on top of the new head; a push that cannot be made (the remote is away)
        keeps the commit in the work dir as the pending status, which `push_pending` pushes
        before the next cycle reads anything, and raises StatusKept."""
        try:
            return self.write(compose, message, races=RACES)
        except (SourceError, StatusPushRejected) as error:
            made = commit(self.source, compose(), message, self.head())
            if made is None:
                return None
            self.source.git("update-ref", PENDING_STATUS_REF, made)
            raise StatusKept(f"the status of this cycle's actions could not be pushed and is "
                             f"kept in the work dir ({made[:10]}); the next cycle pushes it "
                             f"first: {error}") from None

    def push_pending(self, kept_for_s: float) -> None:
        """Pushes the status an earlier cycle kept (see `write_or_keep`), before this cycle
        reads the branch: on top of the branch head when that moved meanwhile, unless the
        status is older than `kept_for_s` (the lease's time: another agent may have taken over
        and acted since; its status is then newer, and the kept one is dropped with a warning).
        Raises StatusKept while the remote cannot take it: no cycle acts on an older status."""
        made = self.source.git("for-each-ref", "--format=%(objectname)", PENDING_STATUS_REF)
        if not made:
            return
        parent, _, at = self.source.git("log", "-1", "--format=%P|%ct", made).partition("|")
        try:
            self.source.fetch()
            head = self.head()
            if head == (parent or None):
                push(self.source, self.branch, made)
        except (SourceError, StatusPushRejected) as error:
            raise StatusKept(f"the status an earlier cycle kept in the work dir ({made[:10]}) "
                             f"still waits for the remote: {error}") from None
        if head == (parent or None):
            log.info("pushed the status an earlier cycle kept in the work dir (%s)", made[:10])
        elif head != made and time.time() - int(at) > kept_for_s:
            log.warning("the status kept in the work dir (%s) is older than the lease and the "
                        "status branch moved since: it is dropped, the branch's is newer",
                        made[:10])
        elif head != made:   # moved meanwhile: what the kept commit changed is made on top of it
            self.write_or_keep(lambda: _changed(self.source, parent or None, made, self.head()),
                               self.source.git("log", "-1", "--format=%B", made))
        self.source.git("update-ref", "-d", PENDING_STATUS_REF)


def _changed(source: SpecRepository, parent: str | None, made: str, head: str | None
             ) -> Files:
    """The files of `head` with what commit `made` changed of `parent` made on them (blobs the
    mirror holds: nothing is read)."""
    before, after = (source.files(parent) if parent else {}), source.files(made)
    files: Files = {path: StoredBlob(blob) for path, blob in
                    (source.files(head) if head else {}).items()}
    for path in set(before) | set(after):
        if before.get(path) != after.get(path):
            if path in after:
                files[path] = StoredBlob(after[path])
            else:
                files.pop(path, None)
    return files


def read_statuses(source: SpecRepository, branch: str, memo: Memo
                  ) -> tuple[dict[str, DeploymentStatus], dict[str, str]]:
    """The deployment status documents at the head of the status branch (none if no branch),
    and what could not be read: deployment name (from the file name) -> why. A document that is
    not YAML, not a status document, empty or binary is left out, and the deployment's status is
    unknown: the agent recovers it from Flink's records (job ids), as after a crash."""
    head = source.head(branch)
    if head is None:
        return {}, {}
    blobs = {path: blob for path, blob in sorted(source.files(head).items())
             if path.startswith("deployments/") and path.count("/") == 1
             and path.endswith(".yaml")}
    known = {blob: document for blob in blobs.values()
             if (document := memo.get(blob)) is not None}
    contents = source.read_blobs([blob for blob in blobs.values() if blob not in known])
    parsed, unreadable = {}, {}
    for path, blob in blobs.items():
        if blob in contents and blob not in parsed:
            try:
                parsed[blob] = _parse(contents[blob])
            except ValueError as error:
                name = path.removeprefix("deployments/").removesuffix(".yaml")
                unreadable[name] = (f"status document {path} on {branch} could not be read "
                                    f"({error}); its status was recovered from Flink's records")
                log.warning("%s", unreadable[name])
    for blob, document in parsed.items():
        memo.put(blob, document)
    memo.retain(blobs.values())   # the documents of the newest head are kept, older ones dropped
    documents = {}
    for blob in blobs.values():
        document = known.get(blob) or parsed.get(blob)
        if document is not None:
            documents[document.name] = document
    return documents, unreadable


def _parse(content: bytes) -> DeploymentStatus:
    """One status document; ValueError saying why it is not one."""
    if len(content) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{len(content):,} bytes, over {MAX_DOCUMENT_BYTES:,}")
    try:
        loader = _LOADER(content.decode("utf-8"))
        try:
            node = loader.get_single_node()
            if _values(node) > MAX_DOCUMENT_VALUES:
                raise ValueError(f"over {MAX_DOCUMENT_VALUES:,} values (an alias bomb?)")
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except (yaml.YAMLError, RecursionError) as error:
        raise ValueError(f"not YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError("empty" if data is None else "not a mapping")
    try:
        return DeploymentStatus.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise ValueError(f"not a DeploymentStatus: {where}: {first['msg']}") from None


def _values(node: yaml.Node | None) -> int:
    """The values of a document, every use of an alias counted (stops past the limit)."""
    count, pending = 0, [node] if node is not None else []
    while pending and count <= MAX_DOCUMENT_VALUES:
        current = pending.pop()
        count += 1
        if isinstance(current, yaml.MappingNode):
            pending += [part for pair in current.value for part in pair]
        elif isinstance(current, yaml.SequenceNode):
            pending += current.value
    return count


def commit(source: SpecRepository, files: Files, message: str,
           parent: str | None) -> str | None:
    """Commits `files` as the whole content of the status branch on top of `parent`, in the
    mirror only, every file written and the message redacted of the secrets the agent knows (a
    last guard: texts from outside are redacted where they enter; a StoredBlob was redacted as
    it was written). None when the content equals `parent`'s (no commit)."""
    files = {path: content if isinstance(content, StoredBlob) else redact_bytes(content)
             for path, content in files.items()}
    message = redact(message)
    tree = _tree(source, files, set(source.files(parent).values()) if parent else set())
    if parent is not None and source.git("rev-parse", f"{parent}^{{tree}}") == tree:
        return None
    parents = ["-p", parent] if parent else []
    # the message on stdin: a cycle with thousands of actions names each of them
    signing = source.signing()
    return source.git(*signing, "commit-tree", tree, *parents, *(("-S",) if signing else ()),
                      "-F", "-", input=message, env=AUTHOR)


def push(source: SpecRepository, branch: str, commit: str) -> None:
    """Pushes `commit` as the status branch (StatusPushRejected when that fails)."""
    try:
        source.git("push", "--quiet", REMOTE, f"{commit}:refs/heads/{branch}")
    except SourceError as error:
        raise StatusPushRejected(f"status push to {branch} was refused: {error}") from None
    source.git("update-ref", f"refs/remotes/{REMOTE}/{branch}", commit)


def _tree(source: SpecRepository, files: Files, known: set[str]) -> str:
    """Writes the blobs and trees of `files` (nested paths allowed) that are not `known` to be
    stored already; returns the root tree."""
    entries: dict[str, dict | bytes] = {}
    for path, content in files.items():
        *folders, name = path.split("/")
        node = entries
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = content
    return _write_tree(source, entries, known)


def _write_tree(source: SpecRepository, entries: dict, known: set[str]) -> str:
    rows = []
    for name, value in entries.items():
        if isinstance(value, dict):
            rows.append((name + "/", b"40000", name, _write_tree(source, value, known)))
        elif isinstance(value, StoredBlob):
            rows.append((name, b"100644", name, value))
        else:
            rows.append((name, b"100644", name, _store(source, b"blob", value, known)))
    rows.sort(key=lambda row: row[0].encode())   # git's order: a folder sorts as "name/"
    data = b"".join(mode + b" " + name.encode() + b"\0" + bytes.fromhex(object_id)
                    for _, mode, name, object_id in rows)
    return _store(source, b"tree", data, known)


def object_id(kind: bytes, data: bytes) -> str:
    """Git's id of an object: the SHA-1 of its header and content (pure)."""
    return hashlib.sha1(b"%s %d\0" % (kind, len(data)) + data).hexdigest()


def _store(source: SpecRepository, kind: bytes, data: bytes, known: set[str]) -> str:
    """Writes one object into the mirror unless it is known to be there; returns its id."""
    identifier = object_id(kind, data)
    if identifier not in known:
        objects = LooseObjectDB(str(source.path / "objects"))   # in process: no git hash-object
        try:
            stored = objects.store(IStream(kind, len(data), BytesIO(data))).hexsha
        except OSError as error:   # e.g. a full disk: gitdb leaves no partial object
            raise SourceError(f"cannot write the status into {source.path}: "
                              f"{error.strerror or error}") from None
        stored = stored.decode() if isinstance(stored, bytes) else stored
        if stored != identifier:
            raise SourceError(f"git stored {kind.decode()} {stored}, expected {identifier}")
        known.add(identifier)
    return identifier


def heartbeat_ref(status_branch: str) -> str:
    """The ref of the heartbeat of the agents writing `status_branch`, on the remote and in
    the mirror."""
    return f"{HEARTBEAT_REFS}/{status_branch}"


def beat(source: SpecRepository, status_branch: str, heartbeat: Heartbeat) -> str:
    """Pushes `heartbeat` as the heartbeat ref (forced: each beat replaces the one before, and
    the remote keeps one small commit); returns its commit. SourceError when it cannot be
    written or pushed."""
    stamp = f"{AUTHOR['GIT_COMMITTER_NAME']} <{AUTHOR['GIT_COMMITTER_EMAIL']}> {heartbeat.at} +0000"
    data = (f"tree {EMPTY_TREE}\nauthor {stamp}\ncommitter {stamp}\n\n"
            f"{heartbeat.message()}").encode()
    known: set[str] = set()
    _store(source, b"tree", b"", known)
    made = _store(source, b"commit", data, known)
    ref = heartbeat_ref(status_branch)
    source.git("push", "--quiet", "--force", REMOTE, f"{made}:{ref}")
    source.git("update-ref", ref, made)
    return made


def read_heartbeat(source: SpecRepository, status_branch: str) -> Heartbeat | None:
    """The newest heartbeat on the remote, fetched; None when there is none. SourceError when
    the remote cannot be read."""
    ref = heartbeat_ref(status_branch)
    try:
        source.git("fetch", "--quiet", "--no-tags", REMOTE, f"+{ref}:{ref}")
    except SourceError as error:
        if "couldn't find remote ref" in str(error).lower():
            return None
        raise
    headers, _, message = source.git("cat-file", "commit", ref).partition("\n\n")
    committer = next((line for line in headers.splitlines() if line.startswith("committer ")),
                     "")
    try:
        at = int(committer.rsplit(" ", 2)[-2])
    except (IndexError, ValueError):
        raise SourceError(f"{ref} is no heartbeat: its commit has no committer time") from None
    return heartbeat_of(message, at)


def last_seen(source: SpecRepository, status_branch: str, now: datetime) -> Freshness:
    """When the agent writing `status_branch` was last seen, at `now`, from its heartbeat on the
    remote; stale when it is old or absent, or cannot be read (the reason said)."""
    try:
        heartbeat = read_heartbeat(source, status_branch)
    except SourceError as error:
        return Freshness(f"agent heartbeat unknown: {str(error).splitlines()[0]}", stale=True)
    return freshness(heartbeat, now, heartbeat_ref(status_branch))
