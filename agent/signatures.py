"""Whose commits the agent applies, and what policies see of a commit (I/O: git, files).

With `--allowed-signers` (SSH keys, git's allowed-signers format) and/or
`--trusted-gpg-keyring` (OpenPGP public keys), verification is on: git's own verification
(`%G?`) must find the spec branch's head signed by one of those keys — with
`--verify-every-commit`, every commit since the revision the agent last applied too. Only the
keys given count: the OpenPGP check runs `gpgv` on the keyring alone (never the machine's
keyring), and an SSH signature is checked against the allowed-signers file alone. A head that is
not trusted is not applied: the revision the agent last applied (the status branch's
`specCommit`, when the head descends from it; else the newest trusted commit among the head's
last MAX_WALK first parents) is assessed instead, and every deployment the head would change is
held (`reconcile`).

`input.commit` is the applied commit as policies see it: author, committer, signer, message
and the files it changed (at most MAX_CHANGED_FILES, its message at most MAX_MESSAGE_CHARS);
it is read only when a policy names `commit`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError, SourceError
from agent.model.verdict import SignatureVerdict
from agent.source import SpecRepository

MAX_WALK = 100            # first parents looked through for the newest trusted commit
MAX_RANGE = 1_000         # --verify-every-commit: commits verified at most; more: not trusted
MAX_CHANGED_FILES = 200   # (every deployment's policy input carries them)
MAX_MESSAGE_CHARS = 16 * 1024
TRUSTED = "G"             # git: a good signature by a trusted key
WHY = {                   # git's other verdicts (%G?), as the status says them
    "N": "not signed",
    "U": "signed by a key that is not among the trusted signers",
    "E": "signed by a key that is not among the trusted signers",
    "B": "its signature does not match it: the commit was changed after it was signed",
    "X": "its signature has expired",
    "Y": "signed by a key that has expired",
    "R": "signed by a revoked key",
}
# git runs this as gpg: gpgv, with the trusted keyring alone (git's --keyid-format and --verify
# are gpg's options, not gpgv's)
GPGV_WRAPPER = """#!/bin/sh
for a; do shift; case "$a" in --keyid-format=*|--verify) ;; *) set -- "$@" "$a";; esac; done
exec gpgv --homedir "$FLINK_GITOPS_GPG_HOME" --keyring "$FLINK_GITOPS_GPG_KEYRING" "$@"
"""
_FIELDS = "%H%x00%G?%x00%GS%x00%GK"   # (NUL between fields: git.strip() keeps it)
_SPEC_COMMIT = re.compile(r'"specCommit": "([0-9a-f]{40})"')


@dataclass(frozen=True)
class Trust:
    """The trusted signers, ready for git: its `-c` options and environment."""

    options: tuple[str, ...]
    env: dict[str, str]
    every_commit: bool

    @classmethod
    def of(cls, allowed_signers: Path | None, keyring: Path | None, every_commit: bool,
           workdir: Path) -> Trust | None:
        """None when verification is off; ConfigError when a file named cannot be read."""
        if allowed_signers is None and keyring is None:
            return None
        for option, path in (("--allowed-signers", allowed_signers),
                             ("--trusted-gpg-keyring", keyring)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{option} {path}: no such file; nothing is applied until "
                                  "the trusted signers can be read")
        home = Path(workdir) / "trust"
        home.mkdir(parents=True, exist_ok=True)
        signers = Path(allowed_signers).resolve() if allowed_signers else home / "no-signers"
        if not signers.exists():
            signers.write_text("")   # (an SSH signature is then of no trusted key)
        for option, path, tool, package in (
                ("--allowed-signers", allowed_signers, "ssh-keygen", "openssh-client"),
                ("--trusted-gpg-keyring", keyring, "gpgv", "gpgv")):
            if path is not None and shutil.which(tool) is None:
                raise ConfigError(f"{option} needs {tool}, which git runs to verify signatures "
                                  f"(Debian: apt-get install {package})")
        wrapper = home / "gpgv-wrapper"
        if not wrapper.exists() or wrapper.read_text() != GPGV_WRAPPER:
            wrapper.write_text(GPGV_WRAPPER)
            wrapper.chmod(0o700)
        return cls(("-c", f"gpg.ssh.allowedSignersFile={signers}",
                    "-c", f"gpg.openpgp.program={wrapper}", "-c", "gpg.x509.program=false"),
                   {"FLINK_GITOPS_GPG_HOME": str(home),
                    "FLINK_GITOPS_GPG_KEYRING": str(_binary_keyring(keyring, home))},
                   every_commit)


def keys_read(allowed_signers: Path | None, keyring: Path | None) -> str:
    """A digest of the trusted keys' files as they read now ("" when verification is off): a
    cycle that saw other keys decides again."""
    if allowed_signers is None and keyring is None:
        return ""
    digest = hashlib.sha256()
    for path in (allowed_signers, keyring):
        try:
            digest.update(Path(path).read_bytes() if path else b"-")
        except OSError as error:
            digest.update(f"unreadable: {error.strerror}".encode())
    return digest.hexdigest()


def _binary_keyring(keyring: Path | None, home: Path) -> Path:
    """The keyring as gpgv reads it: binary (an armored export is decoded into the work dir);
    an empty one when none is given."""
    if keyring is None:
        empty = home / "no-keys.gpg"
        if not empty.exists():
            empty.write_bytes(b"")
        return empty
    data = Path(keyring).read_bytes()
    if not data.lstrip().startswith(b"-----BEGIN PGP"):
        return Path(keyring).resolve()
    binary = home / f"keyring-{hashlib.sha256(data).hexdigest()[:16]}.gpg"
    if not binary.exists():
        try:
            binary.write_bytes(dearmored(data.decode("ascii", errors="replace")))
        except binascii.Error as error:
            raise ConfigError(f"--trusted-gpg-keyring {keyring}: its armored keys cannot be "
                              f"read ({error})") from None
    return binary


def dearmored(text: str) -> bytes:
    """The packets of ASCII-armored OpenPGP blocks (RFC 4880 §6.2: a BEGIN line, headers up to
    a blank line, base64 lines, a `=` checksum line, an END line) (pure)."""
    packets, body, part = b"", [], None
    for line in (line.strip() for line in text.splitlines()):
        if line.startswith("-----BEGIN PGP"):
            part, body = "headers", []
        elif line.startswith("-----END PGP") and part is not None:
            packets += base64.b64decode("".join(body))
            part = None
        elif part == "headers" and not line:
            part = "body"
        elif part == "body" and line and not line.startswith("="):
            body.append(line)
    return packets


def verdicts(source: SpecRepository, trust: Trust, *revisions: str,
             limit: int = 1) -> list[tuple[str, str, str]]:
    """(commit, git's verdict letter, signer) of `revisions` as `git log` lists them, at most
    `limit` commits."""
    out = source.git(*trust.options, "log", f"--max-count={limit}", f"--format={_FIELDS}",
                     *revisions, "--", env=trust.env)
    return [(fields[0], fields[1], fields[2]) for fields in
            (line.split("\x00") for line in out.splitlines()) if len(fields) >= 3]


def verify(source: SpecRepository, trust: Trust | None, branch: str, head: str,
           applied: str | None) -> SignatureVerdict:
    """Whether `head`, the head of `branch` (or the revision planned), may be applied
    (`applied`: the revision the agent last applied), and which revision is applied when it
    may not."""
    if trust is None:
        return SignatureVerdict(branch, head)
    [(_, letter, signer)] = verdicts(source, trust, head)
    culprit, why = (None, None) if letter == TRUSTED else (head, _why(letter))
    if culprit is None and trust.every_commit and applied not in (None, head) \
            and _descends(source, applied, head):
        rows = verdicts(source, trust, f"{applied}..{head}", limit=MAX_RANGE + 1)
        untrusted = [(commit, letter) for commit, letter, _ in rows if letter != TRUSTED]
        if len(rows) > MAX_RANGE:
            culprit, why = head, (f"more than {MAX_RANGE:,} commits since the last applied "
                                  f"revision {applied[:10]}: each would have to be verified")
        elif untrusted:
            culprit, why = untrusted[-1][0], _why(untrusted[-1][1])   # the oldest
    if culprit is None:
        return SignatureVerdict(branch, head, True, True, signer or None, applied=head)
    fallback = applied if applied is not None and _descends(source, applied, head) \
        else _newest_trusted(source, trust, head)
    return SignatureVerdict(branch, head, True, False, signer if letter == TRUSTED else None,
                            why, culprit, fallback)


def _why(letter: str) -> str:
    return WHY.get(letter, f"git cannot verify it (%G? {letter})")


def _descends(source: SpecRepository, ancestor: str, head: str) -> bool:
    try:
        source.git("merge-base", "--is-ancestor", ancestor, head)
        return True
    except SourceError:
        return False


def _newest_trusted(source: SpecRepository, trust: Trust, head: str) -> str | None:
    try:
        rows = verdicts(source, trust, "--first-parent", f"{head}~1", limit=MAX_WALK)
    except SourceError:   # the head is the first commit
        return None
    return next((commit for commit, letter, _ in rows if letter == TRUSTED), None)


def applied_revision(source: SpecRepository, status_head: str | None) -> str | None:
    """The spec commit the status branch last recorded (its status.json's `specCommit`): the
    revision the agent last applied. None when there is none, or it cannot be read."""
    text = source.read(status_head, "status.json") if status_head else None
    found = _SPEC_COMMIT.search(text[:4096].decode(errors="replace")) if text else None
    return found.group(1) if found else None


def commit_input(source: SpecRepository, commit: str, signer: str | None,
                 applied: str | None) -> dict:
    """`input.commit`: the commit as policies see it; its changed files are those that differ
    from the revision last `applied` (its own when there is none, or it is that revision)."""
    fields = source.git("log", "-1", "--format=%an%x00%ae%x00%cn%x00%ce%x00%B", commit)
    author, author_email, committer, committer_email, message = \
        (fields.split("\x00", 4) + [""] * 5)[:5]
    try:   # (a revision the remote no longer has: the commit's own changes)
        changed = source.git("diff", "--name-only", "--no-renames", applied, commit) \
            if applied is not None and applied != commit else None
    except SourceError:
        changed = None
    if changed is None:
        changed = source.git("diff-tree", "--root", "--no-commit-id", "--name-only", "-r",
                             "--no-renames", commit)
    changed = changed.splitlines()
    return {"sha": commit, "author": {"name": author, "email": author_email},
            "committer": {"name": committer, "email": committer_email},
            "signer": signer, "message": message[:MAX_MESSAGE_CHARS],
            "changedFiles": changed[:MAX_CHANGED_FILES],
            "changedFilesCut": len(changed) > MAX_CHANGED_FILES}
