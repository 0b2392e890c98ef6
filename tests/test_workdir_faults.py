"""Faults of the agent's own host, with real git and a real filesystem, no Flink (the one target
points at a port nobody listens on, and no deployment uses it): a mirror deleted, truncated or
garbled in the work dir is made again from the remote by the next cycle, a ref another git
process moves during a fetch is fetched again, and a work dir on a full disk is one clear line
naming the path and the OS's reason, after which the mirror is whole and the next cycle, once
there is space, works. (Faults of the remote: test_git_faults.)"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.config import DEFAULT_STATUS_BRANCH, Settings
from agent.errors import SourceError
from agent.reconcile import sync
from agent.source import PENDING_STATUS_REF, SpecRepository
from agent import testpoints
from conftest import git


@pytest.fixture
def synced(spec_repo, settings) -> Path:
    """A spec repo with one target and no deployment, synced once: the agent's mirror."""
    spec_repo.write_target("test", "http://127.0.0.1:9")
    spec_repo.push("a target")
    assert sync(settings).exit_code == 0
    return SpecRepository(settings.repo, settings.workdir).path


def fsck(mirror: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(mirror), "fsck", "--no-progress", "--full"],
                          capture_output=True, text=True)


def made_again(spec_repo, settings, mirror: Path, caplog) -> None:
    """The next cycle, after a spec change, works: its status commit is on top of the remote's
    (read back from the remote, not started afresh), the mirror is sound, and the broken one
    was moved aside with a warning saying so."""
    before = spec_repo.status_commits()
    spec_repo.write("notes.md", "a change after the damage\n")
    spec_repo.push("a change after the damage")
    result = sync(settings)
    assert result.exit_code == 0
    assert spec_repo.status_commits() == [result.status_commit, *before]
    assert fsck(mirror).returncode == 0, fsck(mirror).stderr
    assert (mirror.parent / f"{mirror.name}.broken").is_dir()
    [warning] = [r.getMessage() for r in caplog.records if "is broken" in r.getMessage()]
    assert str(mirror) in warning and f"moved to {mirror.name}.broken" in warning


def test_a_deleted_mirror_is_cloned_again_by_the_next_cycle(synced, spec_repo, settings):
    before = spec_repo.status_commits()
    shutil.rmtree(synced)
    spec_repo.write("notes.md", "a change after the mirror was deleted\n")
    spec_repo.push()
    result = sync(settings)
    assert result.exit_code == 0
    assert spec_repo.status_commits() == [result.status_commit, *before]
    assert fsck(synced).returncode == 0


@pytest.mark.parametrize("damage", [
    pytest.param(lambda m: (m / "HEAD").write_bytes(b""), id="HEAD-empty"),
    pytest.param(lambda m: (m / "HEAD").write_bytes(b"garbage\n"), id="HEAD-garbage"),
    pytest.param(lambda m: (m / "HEAD").unlink(), id="HEAD-deleted"),
    pytest.param(lambda m: (m / "config").write_bytes(b""), id="config-empty"),
    pytest.param(lambda m: (m / "config").write_bytes(b"[[[\xff\x00garbage\n"),
                 id="config-garbage"),
])
def test_a_mirror_whose_head_or_config_is_garbled_is_made_again_from_the_remote(
        synced, spec_repo, settings, caplog, damage):
    damage(synced)
    made_again(spec_repo, settings, synced, caplog)


def emptied(rev: str):
    """Truncates the loose object `rev` names to nothing (a write cut short)."""
    def damage(mirror: Path) -> None:
        found = git(mirror, "rev-parse", rev)
        os.truncate(mirror / "objects" / found[:2] / found[2:], 0)
    return damage


def packed(cut):
    """Packs the mirror (as `git gc` would) and cuts its pack or index file with `cut`."""
    def damage(mirror: Path) -> None:
        git(mirror, "repack", "-adq")
        git(mirror, "prune-packed")
        [file] = (mirror / "objects" / "pack").glob(cut[0])
        data = file.read_bytes()
        file.chmod(0o644)
        file.write_bytes(data[:cut[1](len(data))])
    return damage


@pytest.mark.parametrize("damage", [
    pytest.param(emptied(f"refs/remotes/origin/{DEFAULT_STATUS_BRANCH}"), id="status-commit"),
    pytest.param(emptied(f"refs/remotes/origin/{DEFAULT_STATUS_BRANCH}^{{tree}}"),
                 id="status-tree"),
    pytest.param(emptied("refs/remotes/origin/main:targets/test.yaml"), id="spec-file"),
    pytest.param(packed(("*.pack", lambda size: size // 2)), id="pack-half"),
    pytest.param(packed(("*.pack", lambda size: 0)), id="pack-empty"),
    pytest.param(packed(("*.idx", lambda size: size // 2)), id="index-half"),
])
def test_a_truncated_object_or_pack_is_made_again_from_the_remote(synced, spec_repo, settings,
                                                                  caplog, damage):
    damage(synced)
    made_again(spec_repo, settings, synced, caplog)


def pointing_nowhere(mirror: Path) -> None:
    (mirror / "refs" / "remotes" / "origin" / "main").write_text("1" * 40 + "\n")


def packed_refs_garbled(mirror: Path) -> None:
    git(mirror, "pack-refs", "--all")
    (mirror / "packed-refs").write_text("garbage garbage\n")


@pytest.mark.parametrize("damage", [
    pytest.param(pointing_nowhere, id="missing-object"),
    pytest.param(packed_refs_garbled, id="packed-refs-garbage"),
])
def test_a_remote_branch_pointing_at_a_missing_object_is_made_again_from_the_remote(
        synced, spec_repo, settings, caplog, damage):
    damage(synced)
    made_again(spec_repo, settings, synced, caplog)


def test_a_rebuild_says_it_lost_the_status_commit_not_pushed_yet(synced, spec_repo, settings,
                                                                  caplog):
    kept = spec_repo.status_commits()[0]
    git(synced, "update-ref", PENDING_STATUS_REF, kept)
    (synced / "HEAD").write_bytes(b"")
    sync(settings)
    [warning] = [r.getMessage() for r in caplog.records if "is broken" in r.getMessage()]
    assert f"the status commit {kept[:10]} it kept (not pushed yet) is lost" in warning
    assert (synced.parent / f"{synced.name}.broken" / PENDING_STATUS_REF).is_file()


# --- a full disk: a tmpfs of its own, filled to the last block ---

@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB filesystem of the test's own (root may mount one; anyone else gets an xfail
    saying so: a file size limit is no stand-in, git dies of SIGXFSZ rather than seeing a full
    disk)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.xfail(f"a full disk needs a filesystem of its own, and mount -t tmpfs failed: "
                     f"{mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Writes a file until the disk has no block left; returns it (delete it to free space)."""
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(descriptor, b"\0" * 65536)
    except OSError as error:
        assert error.errno == errno.ENOSPC
    try:
        while True:
            os.write(descriptor, b"\0")
    except OSError:
        pass
    finally:
        os.close(descriptor)
    return filler


@pytest.fixture
def on_small_disk(spec_repo, small_disk) -> Settings:
    """The agent's settings with its work dir on the small disk, synced once."""
    spec_repo.write_target("test", "http://127.0.0.1:9")
    spec_repo.push("a target")
    settings = Settings(str(spec_repo.remote), workdir=small_disk / "agent")
    assert sync(settings).exit_code == 0
    return settings


RACING_UPLOAD_PACK = """#!{python}
\"\"\"git-upload-pack serving the remote (its last argument), except that the first {times}
fetches find {ref} of the mirror moved by another git process after the fetch read it and
before it writes it (when the fetch asks for a pack), as a killed agent's git child once did.
While races are left, the remote's main moves on too, so that the next try needs a pack.\"\"\"
import os, subprocess, sys
from pathlib import Path

def move(repo, ref, message, *parent):
    def run(*args):
        return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    run("update-ref", ref, run("commit-tree", "-m", message, *parent, ref + "^{{tree}}"))

left = Path({left!r})
child = subprocess.Popen(["git-upload-pack", *sys.argv[1:]], stdin=subprocess.PIPE)
raced = False   # (once a fetch: it may ask for the pack in several rounds)
while chunk := os.read(0, 65536):
    if b"command=fetch" in chunk and not raced and (races := int(left.read_text())) > 0:
        left.write_text(str(races - 1))
        raced = True
        move({mirror!r}, {ref!r}, f"moved {{races}}")
        if races > 1:
            move(sys.argv[-1], "refs/heads/main", f"racing {{races}}", "-p", "refs/heads/main")
    child.stdin.write(chunk)
    child.stdin.flush()
child.stdin.close()
sys.exit(child.wait())
"""


def moved_during_fetches(mirror: Path, times: int, tmp_path: Path) -> None:
    """The mirror's fetches from now on meet `times` races on its `main` (RACING_UPLOAD_PACK)."""
    (tmp_path / "left").write_text(str(times))
    script = tmp_path / "racing-upload-pack"
    script.write_text(RACING_UPLOAD_PACK.format(
        python=sys.executable, times=times, left=str(tmp_path / "left"), mirror=str(mirror),
        ref="refs/remotes/origin/main"))
    script.chmod(0o755)
    git(mirror, "config", "remote.origin.uploadpack", str(script))


def test_a_ref_another_git_process_moves_during_the_fetch_is_fetched_again(
        synced, spec_repo, settings, tmp_path, caplog):
    spec_repo.write("notes.md", "a change the fetch brings\n")
    spec_repo.push("a change")
    moved_during_fetches(synced, 1, tmp_path)
    caplog.set_level(logging.INFO, "agent.source")
    assert sync(settings).exit_code == 0
    assert caplog.text.count("moved a ref during the fetch: fetching again") == 1
    assert git(synced, "rev-parse", "refs/remotes/origin/main") == \
        git(spec_repo.remote, "rev-parse", "main")

    spec_repo.write("notes.md", "another change\n")
    spec_repo.push("another change")
    moved_during_fetches(synced, 3, tmp_path)   # every try races: the cycle says why it stopped
    with pytest.raises(SourceError, match="cannot fetch .*cannot lock ref 'refs/remotes/origin"
                                          "/main': is at [0-9a-f]+ but expected"):
        sync(settings)
    assert caplog.text.count("fetching again") == 3


def test_a_full_disk_fails_the_fetch_in_one_clear_line_and_the_cycle_after_it_works(
        spec_repo, on_small_disk, small_disk):
    mirror = SpecRepository(on_small_disk.repo, on_small_disk.workdir).path
    spec_repo.write("notes.md", os.urandom(20_000).hex())
    spec_repo.push("a change to fetch")
    filler = fill(small_disk)
    shown = subprocess.run([sys.executable, "-m", "agent.cli", "sync", "--repo",
                            on_small_disk.repo, "--workdir", str(on_small_disk.workdir)],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 1
    [line] = shown.stderr.splitlines()
    assert line.startswith(f"sync failed: cannot fetch {spec_repo.remote} into {mirror}: ")
    assert line.endswith("No space left on device")

    filler.unlink()
    assert fsck(mirror).returncode == 0, fsck(mirror).stderr
    result = sync(on_small_disk)
    assert result.exit_code == 0 and result.status_commit == spec_repo.status_commits()[0]
    assert fsck(mirror).returncode == 0
    assert not list(mirror.parent.glob("*.broken"))   # a full disk is no broken mirror


def test_a_work_dir_made_on_a_full_disk_leaves_no_half_made_mirror(spec_repo, small_disk):
    spec_repo.write_target("test", "http://127.0.0.1:9")
    spec_repo.push("a target")
    settings = Settings(str(spec_repo.remote), workdir=small_disk / "agent")
    filler = fill(small_disk)
    with pytest.raises(SourceError, match=r"cannot make the mirror of .* in "
                                          rf"{small_disk / 'agent' / 'repos'}: .*"
                                          r"No space left on device$"):
        sync(settings)
    assert list((small_disk / "agent" / "repos").iterdir()) == []

    filler.unlink()
    assert sync(settings).exit_code == 0
    assert spec_repo.status_commits()


def test_a_full_disk_when_the_status_is_written_is_a_clear_error_and_the_mirror_stays_whole(
        spec_repo, on_small_disk, small_disk, monkeypatch):
    mirror = SpecRepository(on_small_disk.repo, on_small_disk.workdir).path
    spec_repo.write("notes.md", "a change whose status does not fit\n")
    spec_repo.push("a change")
    pause = small_disk.parent / "paused"
    monkeypatch.setenv("FLINK_GITOPS_PAUSE_AT", testpoints.BEFORE_STATUS_PUSH)
    monkeypatch.setenv("FLINK_GITOPS_PAUSE_FILE", str(pause))
    filled: list[Path] = []

    def fill_when_paused() -> None:   # the disk fills up between the fetch and the status write
        while not pause.exists():
            threading.Event().wait(0.01)
        filled.append(fill(small_disk))
        pause.unlink()

    filling = threading.Thread(target=fill_when_paused, daemon=True)
    filling.start()
    try:
        with pytest.raises(SourceError, match=rf"{mirror}.*No space left on device") as raised:
            sync(on_small_disk)
        assert "\n" not in str(raised.value)
    finally:
        filling.join(10)
        for filler in filled:
            filler.unlink()
    monkeypatch.delenv("FLINK_GITOPS_PAUSE_AT")
    assert fsck(mirror).returncode == 0, fsck(mirror).stderr
    result = sync(on_small_disk)
    assert result.exit_code == 0 and result.status_commit == spec_repo.status_commits()[0]
