"""Maven coordinates, repository layout and snapshot metadata (pure).

A `jarUri: maven://GROUP:ARTIFACT:VERSION[:CLASSIFIER]` names a jar kept in a Maven repository.
Here the coordinate is parsed (a malformed one says which part is missing or wrong), laid out as
the repository keeps it (`org/example/orders/1.4.2/orders-1.4.2[-CLASSIFIER].jar`), and a
-SNAPSHOT version's `maven-metadata.xml` is read to the timestamped build it names
(`1.1-20261129.101010-3`). The metadata is a server's answer, so it is read as hostile: at most
MAX_METADATA_BYTES, UTF-8, and a document declaring a DOCTYPE or entities is refused before it
is parsed. Checksum files (`<file>.sha1`, `.sha256`), which Maven repositories and many jar
servers publish, are read to their digest. The requests are `agent.flink.maven`'s.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

PREFIX = "maven://"
CENTRAL = "https://repo.maven.apache.org/maven2"   # the repository when a target lists none
SNAPSHOT = "-SNAPSHOT"
METADATA_FILE = "maven-metadata.xml"
MAX_PART_CHARS = 200              # a coordinate part longer than this (200) is refused
MAX_METADATA_BYTES = 1 << 20      # a maven-metadata.xml over this (1 MiB) is refused
CHECKSUM_HEX_DIGITS = {"sha256": 64, "sha1": 40}   # a checksum file's digest, per algorithm
MAX_CHECKSUM_BYTES = 1024         # a checksum file over this (1 KiB) is not taken as one
FORM = "maven://GROUP:ARTIFACT:VERSION[:CLASSIFIER], e.g. maven://org.example:orders:1.4.2"

_PARTS = ("groupId", "artifactId", "version", "classifier")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")                 # one path segment, never ..
_GROUP = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")        # dotted, no empty segment
_HOSTILE = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]+")


class CoordinateInvalid(ValueError):
    """A `maven://` jarUri that is not GROUP:ARTIFACT:VERSION[:CLASSIFIER]; the message says
    which part."""


class MetadataInvalid(ValueError):
    """A maven-metadata.xml the agent will not read, or one that names no build of the jar."""


@dataclass(frozen=True)
class Coordinate:
    """A jar's place in a Maven repository (its packaging is always `jar`)."""

    group: str
    artifact: str
    version: str
    classifier: str | None = None

    def __str__(self) -> str:
        return ":".join(p for p in (self.group, self.artifact, self.version, self.classifier)
                        if p)

    @property
    def snapshot(self) -> bool:
        return self.version.endswith(SNAPSHOT)

    def directory(self) -> str:
        """The version's directory in a repository."""
        return f"{self.group.replace('.', '/')}/{self.artifact}/{self.version}"

    def jar_path(self, build: str | None = None) -> str:
        """The jar's path in a repository; `build`: a -SNAPSHOT's timestamped version, which
        the file's name carries in place of `-SNAPSHOT`."""
        suffix = f"-{self.classifier}" if self.classifier else ""
        return f"{self.directory()}/{self.artifact}-{build or self.version}{suffix}.jar"

    def metadata_path(self) -> str:
        """Where a -SNAPSHOT version's builds are listed."""
        return f"{self.directory()}/{METADATA_FILE}"


def is_maven(jar_uri: str | None) -> bool:
    return bool(jar_uri) and jar_uri[:len(PREFIX)].lower() == PREFIX


def parse_coordinate(jar_uri: str) -> Coordinate:
    """The coordinate a `maven://` jarUri names; CoordinateInvalid says which part is missing
    or has characters other than A-Z a-z 0-9 _ . -"""
    if not is_maven(jar_uri):
        raise CoordinateInvalid(f"not a Maven coordinate (write {FORM})")
    parts = jar_uri[len(PREFIX):].split(":")
    if len(parts) > len(_PARTS):
        raise CoordinateInvalid(f"has {len(parts)} parts, at most {len(_PARTS)} (write {FORM})")
    for index, name in enumerate(_PARTS[:3]):
        if index >= len(parts) or not parts[index]:
            raise CoordinateInvalid(f"its {name} is missing (write {FORM})")
    if len(parts) == 4 and not parts[3]:
        raise CoordinateInvalid("its classifier is empty (leave out the last ':')")
    for name, part in zip(_PARTS, parts):
        _check_part(name, part)
    return Coordinate(*parts)


def _check_part(name: str, part: str) -> None:
    if len(part) > MAX_PART_CHARS:
        raise CoordinateInvalid(f"its {name} has {len(part):,} characters, over the limit of "
                                f"{MAX_PART_CHARS}")
    if name == "groupId" and not _GROUP.fullmatch(part):
        raise CoordinateInvalid(f"its groupId {part!r} is not names of A-Z a-z 0-9 _ - "
                                "separated by single dots")
    if name != "groupId" and not _NAME.fullmatch(part):
        raise CoordinateInvalid(f"its {name} {part!r} is not of A-Z a-z 0-9 _ . - (starting "
                                "with a letter, digit or _)")


def snapshot_build(metadata: bytes, coordinate: Coordinate) -> str:
    """The timestamped version of the latest build of `coordinate` (a -SNAPSHOT) that its
    version directory's `metadata` names: the latest `<snapshotVersion>` of extension `jar` and
    the coordinate's classifier, or, in metadata that lists none (Maven 2's), `<snapshot>`'s
    timestamp and build number."""
    versioning = _child(_document(metadata), "versioning")
    listed = _child(versioning, "snapshotVersions")
    if listed is None:   # (written by Maven 2: one timestamp for every file of the build)
        build = _timestamped(_child(versioning, "snapshot"), coordinate)
    else:
        build = _listed_build(listed, coordinate)
    base = coordinate.version.removesuffix(SNAPSHOT)
    if not build:
        raise MetadataInvalid(f"{METADATA_FILE} names no build of {coordinate}")
    if len(build) > MAX_PART_CHARS or not _NAME.fullmatch(build) or not build.startswith(base):
        raise MetadataInvalid(f"{METADATA_FILE} names {build[:80]!r}, not a build of "
                              f"{coordinate}")
    return build


def checksum_in(content: bytes, algorithm: str) -> str | None:
    """The digest a checksum file holds (its first token, as `sha1sum` writes it, lower case),
    or None when that is not a digest of `algorithm`."""
    tokens = content.decode("ascii", errors="replace").split()
    digest = tokens[0] if tokens else ""
    if len(digest) != CHECKSUM_HEX_DIGITS[algorithm] or not _HEX.fullmatch(digest):
        return None
    return digest.lower()


def _listed_build(listed: ElementTree.Element, coordinate: Coordinate) -> str | None:
    builds = [entry for entry in _children(listed, "snapshotVersion")
              if _text(entry, "extension") == "jar"
              and (_text(entry, "classifier") or None) == coordinate.classifier]
    if not builds:
        return None
    return _text(max(builds, key=lambda entry: _text(entry, "updated") or ""), "value")


def _timestamped(snapshot: ElementTree.Element | None, coordinate: Coordinate) -> str | None:
    timestamp, number = _text(snapshot, "timestamp"), _text(snapshot, "buildNumber")
    if not timestamp or not number:
        return None
    return f"{coordinate.version.removesuffix(SNAPSHOT)}-{timestamp}-{number}"


def _document(metadata: bytes) -> ElementTree.Element:
    if len(metadata) > MAX_METADATA_BYTES:
        raise MetadataInvalid(f"{METADATA_FILE} is over {MAX_METADATA_BYTES:,} bytes")
    try:
        text = metadata.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MetadataInvalid(f"{METADATA_FILE} is not UTF-8") from None
    if _HOSTILE.search(text):
        raise MetadataInvalid(f"{METADATA_FILE} declares a DOCTYPE or entities, which the "
                              "agent does not read")
    try:
        return ElementTree.fromstring(text)   # (a str: its encoding declaration is moot)
    except ElementTree.ParseError as error:
        raise MetadataInvalid(f"{METADATA_FILE} is not well-formed XML ({error})") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]   # (a namespace, when the repository writes one, ignored)


def _children(parent: ElementTree.Element | None, name: str) -> list[ElementTree.Element]:
    return [] if parent is None else [c for c in parent if _local(c.tag) == name]


def _child(parent: ElementTree.Element | None, name: str) -> ElementTree.Element | None:
    found = _children(parent, name)
    return found[0] if found else None


def _text(parent: ElementTree.Element | None, name: str) -> str | None:
    found = _child(parent, name)
    return (found.text or "").strip() if found is not None else None
