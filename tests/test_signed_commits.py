"""Signed commits: the agent applies only a spec branch head signed by a trusted key (real SSH
and OpenPGP signatures made by git, verified by git), keeps the last trusted revision applied
and heals on it otherwise, signs its own status commits, and shows policies who committed
what — on a real Flink cluster."""

from __future__ import annotations

import os
import subprocess
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from agent.reconcile import sync
from conftest import TEST_USER, git
from test_commands import run
from test_review_commands import plan_json


class Signer:
    """An SSH key made for the test, and the allowed-signers line that trusts it."""

    def __init__(self, root: Path, name: str):
        (root / name).mkdir()
        self.key = root / name / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f",
                        str(self.key)], check=True)
        self.allowed = f"{name}@example.com {self.key.with_suffix('.pub').read_text().strip()}"

    def push(self, spec_repo, message: str, author: str = "test user") -> str:
        """Commits everything written, signed with this key, and pushes it."""
        git(spec_repo.checkout, "add", "-A")
        subprocess.run(["git", "-C", str(spec_repo.checkout), "-c", "gpg.format=ssh", "-c",
                        f"user.signingkey={self.key}", "commit", "--quiet", "-S",
                        "--allow-empty", "-m", message], check=True,
                       env={**os.environ, **TEST_USER, "GIT_AUTHOR_NAME": author,
                            "GIT_AUTHOR_EMAIL": f"{author.split()[0]}@example.com"})
        git(spec_repo.checkout, "push", "--quiet", "origin", "HEAD:main")
        return git(spec_repo.checkout, "rev-parse", "HEAD")


@pytest.fixture
def alice(tmp_path) -> Signer:
    return Signer(tmp_path, "alice")


@pytest.fixture
def mallory(tmp_path) -> Signer:
    return Signer(tmp_path, "mallory")


@pytest.fixture
def trusting(settings, alice, tmp_path):
    """The settings of an agent that trusts alice's key only."""
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(alice.allowed + "\n")
    return replace(settings, allowed_signers=allowed)


def untrusted(head: str, why: str, applied: str) -> str:
    return (f"commit {head[:10]} not signed by a trusted key ({why}): the last trusted "
            f"revision {applied[:10]} stays applied")


def test_only_a_head_signed_by_a_trusted_key_is_applied_and_healing_runs_the_last_trusted(
        deployed, spec_repo, trusting, alice, mallory, rest):
    deployed("signed")
    trusted = alice.push(spec_repo, "signed: first start")
    assert sync(trusting).exit_code == 0
    first = rest.job("signed", 1)
    rest.wait_state(first, "RUNNING")

    deployed("signed", parallelism=2)
    unsigned = spec_repo.push("parallelism 2, unsigned")
    result = sync(trusting)
    assert result.exit_code == 1 and result.outcomes == {}
    status = spec_repo.status_of("signed")
    assert status["sync"] == "BLOCKED"
    assert status["errors"][0]["message"] == untrusted(unsigned, "not signed", trusted)
    assert rest.running() == [first]
    dashboard = spec_repo.status_file("README.md")
    assert f"- `main`: {untrusted(unsigned, 'not signed', trusted)}" in dashboard

    forged = mallory.push(spec_repo, "parallelism 2, signed by mallory")
    sync(trusting)
    assert spec_repo.status_of("signed")["errors"][0]["message"] == untrusted(
        forged, "signed by a key that is not among the trusted signers", trusted)
    assert rest.running() == [first]

    requests.patch(f"{rest.url}/jobs/{first}", params={"mode": "cancel"}, timeout=10)
    rest.wait_state(first, "CANCELED")
    sync(trusting)   # the job died: started again as the last trusted revision runs it
    healed = rest.job("signed", 2)
    rest.wait_state(healed, "RUNNING")
    assert rest.parallelism(healed) == 1
    assert spec_repo.status_of("signed")["lastAction"]["kind"] == "RESTART"
    sync(trusting)
    assert spec_repo.status_of("signed")["sync"] == "BLOCKED"

    alice.push(spec_repo, "parallelism 2, signed by alice")
    assert sync(trusting).exit_code == 0
    status = spec_repo.status_of("signed")
    assert status["sync"] == "SYNCED" and status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    assert rest.parallelism(rest.job("signed", 3)) == 2


def test_a_deployment_an_unsigned_head_does_not_change_is_kept_in_sync(
        deployed, spec_repo, trusting, alice, rest):
    deployed("signed-steady")
    alice.push(spec_repo, "steady: first start")
    sync(trusting)
    deployed("signed-newcomer")
    head = spec_repo.push("a new deployment, unsigned")
    result = sync(trusting)
    assert spec_repo.status_of("signed-steady")["sync"] == "SYNCED"
    newcomer = spec_repo.status_of("signed-newcomer")
    assert newcomer["sync"] == "BLOCKED" and head[:10] in newcomer["errors"][0]["message"]
    assert rest.job("signed-newcomer", 1).endswith("-not-found")
    assert result.commit != head   # the status records the revision applied


def test_verify_every_commit_refuses_a_signed_head_over_an_unsigned_commit(
        deployed, spec_repo, trusting, alice, rest):
    deployed("chained")
    trusted = alice.push(spec_repo, "chained: first start")
    sync(trusting)
    deployed("chained", parallelism=2)
    sneaked = spec_repo.push("parallelism 2, unsigned")
    alice.push(spec_repo, "an unrelated signed commit on top")

    code, planned = plan_json(trusting, "--allowed-signers", str(trusting.allowed_signers),
                              "--verify-every-commit")
    assert code == 1
    assert planned["signature"]["commit"] == sneaked
    assert planned["signature"]["why"] == "not signed"
    assert [d["action"] for d in planned["deployments"]] == ["BLOCKED"]
    result = sync(replace(trusting, verify_every_commit=True))
    assert result.exit_code == 1
    assert spec_repo.status_of("chained")["errors"][0]["message"] == untrusted(
        sneaked, "not signed", trusted)

    assert sync(trusting).exit_code == 0   # the head alone: signed by alice
    assert rest.parallelism(rest.job("chained", 2)) == 2


def test_plan_tells_a_reviewer_whether_the_head_is_signed(deployed, spec_repo, trusting,
                                                           alice):
    deployed("reviewed")
    signed = alice.push(spec_repo, "signed")
    code, planned = plan_json(trusting, "--allowed-signers", str(trusting.allowed_signers))
    assert code == 2 and planned["signature"]["trusted"] is True
    assert planned["signature"]["signer"] == "alice@example.com"
    assert planned["signature"]["head"] == signed
    markdown = run("plan", "--repo", trusting.repo, "--workdir", str(trusting.workdir),
                   "--allowed-signers", str(trusting.allowed_signers))
    assert f"🔏 Head `{signed[:10]}` is signed by alice@example.com" in markdown.stdout

    deployed("reviewed", parallelism=3)
    head = spec_repo.push("unsigned")
    markdown = run("plan", "--repo", trusting.repo, "--workdir", str(trusting.workdir),
                   "--allowed-signers", str(trusting.allowed_signers))
    assert markdown.returncode == 1
    assert f"⛔ commit {head[:10]} not signed by a trusted key (not signed)" in markdown.stdout


def test_a_missing_allowed_signers_file_is_a_clear_error_and_nothing_is_applied(
        deployed, spec_repo, settings, tmp_path, rest):
    deployed("signers-missing")
    spec_repo.push()
    result = run("sync", "--repo", settings.repo, "--workdir", str(settings.workdir),
                 "--allowed-signers", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert f"--allowed-signers {tmp_path / 'nowhere'}: no such file; nothing is applied" \
        in " ".join(result.stderr.split() + result.stdout.split())
    assert "Traceback" not in result.stderr
    assert spec_repo.status_commits() == []
    assert rest.job("signers-missing", 1).endswith("-not-found")


def test_the_agent_signs_its_status_commits_with_its_key(deployed, spec_repo, settings,
                                                         tmp_path):
    agent = Signer(tmp_path, "agent")
    deployed("attested", state="CANCELLED")
    spec_repo.push()
    assert sync(replace(settings, signing_key=agent.key)).exit_code == 0
    allowed = tmp_path / "agent_signers"
    allowed.write_text(agent.allowed + "\n")
    verdict = git(spec_repo.remote, "-c", f"gpg.ssh.allowedSignersFile={allowed}", "log", "-1",
                  "--format=%G? %GS", "flink-gitops/status")
    assert verdict == "G agent@example.com"


def test_policies_see_who_committed_what(deployed, spec_repo, trusting, alice):
    spec_repo.write("policies/authors.rego", textwrap.dedent("""\
        package main
        import rego.v1
        deny contains msg if {
            input.metadata.labels.env == "prod"
            input.plan.action != null
            not startswith(input.commit.message, "Reviewed-by:")
            msg := sprintf("%s changed %v without a review marker (signed by %s)",
                           [input.commit.author.email, input.commit.changedFiles,
                            input.commit.signer])
        }
        """))
    deployed("commit-judged", labels="{env: prod}")
    alice.push(spec_repo, "no marker", author="alice liddell")
    sync(trusting)
    [error] = spec_repo.status_of("commit-judged")["errors"]
    assert error["message"] == (
        'policies/authors.rego: alice@example.com changed ["deployments/commit-judged.yaml", '
        '"jobs/counter.jar", "policies/authors.rego", "targets/test.yaml"] without a review '
        'marker (signed by alice@example.com)')
    alice.push(spec_repo, "Reviewed-by: bob", author="alice liddell")
    assert sync(trusting).exit_code == 0


def test_a_head_signed_with_a_trusted_openpgp_key_is_applied(deployed, spec_repo, settings,
                                                            tmp_path):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, **TEST_USER, "GNUPGHOME": str(home)}
    try:
        subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                        "Bob <bob@example.com>", "ed25519", "sign", "never"], check=True,
                       env=env, capture_output=True)
        keyring = tmp_path / "trusted.asc"
        keyring.write_bytes(subprocess.run(["gpg", "--armor", "--export"], check=True, env=env,
                                           capture_output=True).stdout)
        deployed("pgp", state="CANCELLED")
        git(spec_repo.checkout, "add", "-A")
        subprocess.run(["git", "-C", str(spec_repo.checkout), "-c",
                        "user.signingkey=bob@example.com", "commit", "--quiet", "-S", "-m",
                        "signed by bob"], check=True, env=env)
        git(spec_repo.checkout, "push", "--quiet", "origin", "HEAD:main")
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False)
    trusting_bob = replace(settings, trusted_gpg_keyring=keyring)
    assert sync(trusting_bob).exit_code == 0
    assert spec_repo.status_of("pgp")["sync"] == "SYNCED"
    deployed("pgp", state="CANCELLED", parallelism=2)
    spec_repo.push("unsigned")
    assert sync(trusting_bob).exit_code == 1
    assert spec_repo.status_of("pgp")["sync"] == "BLOCKED"


def test_a_key_added_to_the_trusted_signers_applies_its_head_without_a_new_commit(
        deployed, spec_repo, trusting, alice, mallory, rest):
    deployed("newly-trusted", state="CANCELLED")
    alice.push(spec_repo, "first")
    sync(trusting)
    deployed("newly-trusted", state="CANCELLED", parallelism=2)
    mallory.push(spec_repo, "signed by mallory")
    assert sync(trusting).exit_code == 1
    assert sync(trusting).status_commit is None   # quiet: kept for the next cycle
    trusting.allowed_signers.write_text(alice.allowed + "\n" + mallory.allowed + "\n")
    assert sync(trusting).exit_code == 0
    status = spec_repo.status_of("newly-trusted")
    assert status["sync"] == "SYNCED"
    assert status["appliedSpec"]["spec"]["template"]["spec"]["parallelism"] == 2
