"""What a cycle costs does not grow with what did not change: unchanged spec files are not parsed
again, status documents are read back once, and the status branch is written without a git
process per file, with the same objects git itself would write. Real git repositories."""

from __future__ import annotations

import subprocess

import yaml

from agent.load import ParsedFiles, load, load_blobs
from agent.status_store import StatusStore
from agent.caches import Caches
from agent.source import SpecRepository
from conftest import counter_deployment, git


def test_an_unchanged_spec_file_is_not_parsed_again(spec_repo, tmp_path):
    spec_repo.write("deployments/a.yaml", counter_deployment("a"))
    spec_repo.write("deployments/b.yaml", counter_deployment("b"))
    first = spec_repo.push()
    spec_repo.write("deployments/b.yaml", counter_deployment("b", parallelism=3))
    second = spec_repo.push()
    source = SpecRepository(str(spec_repo.remote), tmp_path / "agent")
    source.fetch()
    parsed, asked = ParsedFiles(), []

    def read(blobs):
        asked.append(sorted(blobs))
        return source.read_blobs(blobs)

    before = load_blobs(source.spec_blobs(first), read, parsed)
    after = load_blobs(source.spec_blobs(second), read, parsed)

    assert parsed.parses == 3   # a and b, then only the new b
    assert asked[1] == [source.blob_id(second, "deployments/b.yaml")]
    assert after.deployments["a"] is before.deployments["a"]
    assert after.deployments["b"].spec.spec.template.spec.parallelism == 3


def test_specs_loaded_by_blob_id_equal_specs_loaded_from_text(spec_repo, tmp_path):
    spec_repo.write("deployments/a.yaml", counter_deployment("a") + "---\nkind: Other\n")
    spec_repo.write("deployments/b.yaml", "kind: Deployment\nmetadata: {name: b}\nspec: {}\n")
    spec_repo.write("deployments/c.yaml", "a: [1, 2\n")
    commit = spec_repo.push()
    source = SpecRepository(str(spec_repo.remote), tmp_path / "agent")
    source.fetch()

    by_blob = load_blobs(source.spec_blobs(commit), source.read_blobs, ParsedFiles())
    by_text = load(source.spec_files(commit))

    assert by_blob.deployments == by_text.deployments
    assert by_blob.problems == by_text.problems and by_blob.problems
    assert by_blob.notes == by_text.notes and by_blob.notes


def test_the_status_branch_is_written_with_the_objects_git_would_write(spec_repo, tmp_path):
    spec_repo.push()
    source = SpecRepository(str(spec_repo.remote), tmp_path / "agent")
    source.fetch()
    files = {"README.md": b"# dashboard\n", "status.json": b"{}\n",
             "deployments/a.yaml": b"a: 1\n", "deployments/b-c.yaml": b"b: 2\n",
             "deployments.txt": b"sorts before the folder deployments/\n"}

    commit = StatusStore(source, "flink-gitops/status").write(lambda: files, "status")

    assert git(spec_repo.remote, "fsck", "--strict") == ""
    listed = git(spec_repo.remote, "ls-tree", "-r", "--name-only", commit).split()
    assert listed == ["README.md", "deployments.txt", "deployments/a.yaml",
                      "deployments/b-c.yaml", "status.json"]
    assert spec_repo.status_file("deployments/a.yaml") == "a: 1"
    rebuilt = subprocess.run(["git", "-C", str(spec_repo.remote), "mktree"], check=True,
                             capture_output=True, text=True,
                             input=git(spec_repo.remote, "ls-tree", commit) + "\n").stdout.strip()
    assert rebuilt == git(spec_repo.remote, "rev-parse", f"{commit}^{{tree}}")


def test_writing_the_same_status_again_commits_nothing(spec_repo, tmp_path):
    spec_repo.push()
    source = SpecRepository(str(spec_repo.remote), tmp_path / "agent")
    source.fetch()
    files = {"README.md": b"# dashboard\n", "deployments/a.yaml": b"a: 1\n"}

    first = StatusStore(source, "flink-gitops/status").write(lambda: files, "status")
    again = StatusStore(source, "flink-gitops/status").write(lambda: dict(files), "status")
    changed = StatusStore(source, "flink-gitops/status").write(
        lambda: files | {"deployments/a.yaml": b"a: 2\n"}, "status")

    assert first is not None and again is None and changed is not None
    assert spec_repo.status_commits() == [changed, first]


def test_status_documents_are_read_back_from_the_branch(spec_repo, tmp_path):
    spec_repo.push()
    source = SpecRepository(str(spec_repo.remote), tmp_path / "agent")
    source.fetch()
    document = {"apiVersion": "v1", "kind": "DeploymentStatus", "metadata": {"name": "a"},
                "status": {"state": "RUNNING", "sync": "SYNCED"}}
    StatusStore(source, "flink-gitops/status").write(
        lambda: {"deployments/a.yaml": yaml.safe_dump(document).encode()}, "status")

    store = StatusStore(source, "flink-gitops/status", Caches().documents)
    first, _ = store.read()
    second, _ = store.read()

    assert first["a"].status.state.value == "RUNNING"
    assert second["a"] is first["a"]   # the same blob is not parsed twice


def test_documents_just_written_are_read_back_without_parsing_unless_redacted(
        spec_repo, tmp_path, monkeypatch):
    from agent import status_store
    from agent.logs import register_secret
    from agent.model.status import DeploymentStatus
    from agent.report.dashboard import status_files

    spec_repo.push()
    source = SpecRepository(str(spec_repo.remote), tmp_path / "agent")
    source.fetch()
    register_secret("written-canary-7d1f")
    documents = [DeploymentStatus.model_validate(
        {"metadata": {"name": name}, "status": {"state": "RUNNING", "sync": "SYNCED",
                                                "warnings": [warning]}})
        for name, warning in (("a", "fine"), ("b", "has written-canary-7d1f in it"))]
    store = StatusStore(source, "flink-gitops/status", Caches().documents)
    files = status_files(documents, "c" * 40)
    store.write(lambda: files, "status")
    store.remember(files, documents)
    parsed = []
    original = status_store._parse
    monkeypatch.setattr(status_store, "_parse", lambda content: parsed.append(content)
                        or original(content))

    read, _ = store.read()

    assert read["a"] is documents[0] and len(parsed) == 1
    assert read["b"].status.warnings == ["has *** in it"]


def test_a_deployment_is_checked_again_only_when_it_or_its_files_changed(tmp_path):
    from agent.checks import check_all
    from agent.memo import Memo

    files = {"a.yaml": counter_deployment("a"), "b.yaml": counter_deployment("b"),
             "s.yaml": counter_deployment("s", options="x: ${FG_CHECKS_UNSET}")}
    repo, asked, kept = {"jobs/counter.jar"}, [], Memo("checks", 100)

    def checked(loaded, blob="1"):
        def exists(path):
            asked.append(path)
            return path in repo
        check_all(loaded, lambda path: None, exists, lambda located: (blob,), None, tmp_path,
                  lambda located: [], False, kept)
        return sorted((p.name, p.message) for p in loaded.problems)
    parsed = ParsedFiles()
    first = checked(load_blobs(files, lambda blobs: {b: b.encode() for b in blobs}, parsed))
    asked.clear()
    again = checked(load_blobs(files, lambda blobs: {b: b.encode() for b in blobs}, parsed))
    assert again == first and [name for name, _ in first] == ["s"]   # (its unset secret)
    assert asked == ["jobs/counter.jar"]   # s's alone: it names a secret, checked each cycle
    repo.clear()                  # the jar gone from the repo: its blob changes
    asked.clear()
    gone = checked(load_blobs(files, lambda blobs: {b: b.encode() for b in blobs}, parsed),
                   blob=None)
    assert [name for name, _ in gone] == ["a", "b", "s", "s"] and len(asked) == 3


def test_a_small_file_read_by_many_actions_of_a_cycle_is_read_from_git_once(
        spec_repo, tmp_path, monkeypatch):
    spec_repo.write("jobs/shared.sql", "SELECT 1;\n")
    commit = spec_repo.push()
    source = SpecRepository(str(spec_repo.remote), tmp_path / "agent")
    source.fetch()
    asked = []
    original = source._cat
    monkeypatch.setattr(source, "_cat", lambda blobs: asked.append(blobs) or original(blobs))

    contents = {source.read(commit, "jobs/shared.sql") for _ in range(100)}

    assert contents == {b"SELECT 1;\n"} and len(asked) == 1
    assert source.read(commit, "jobs/missing.sql") is None


def test_a_long_running_process_leaves_its_kept_objects_to_the_collector_once_a_while(
        monkeypatch):
    import gc
    import weakref

    from agent import caches as module

    class Node:
        pass

    monkeypatch.setattr(module, "FULL_COLLECTION_EVERY", 3)
    kept = Caches()
    try:
        kept.settle()
        assert gc.get_freeze_count() > 0           # the cycle's survivors: left alone
        lost = Node()
        lost.me = lost                             # cyclic garbage made old, then dropped
        gone = weakref.ref(lost)
        kept.settle()
        del lost
        gc.collect()
        assert gone() is not None                  # frozen: not collected ...
        kept.settle()
        assert gone() is None                      # ... until the periodic full collection
    finally:
        gc.unfreeze()


def test_a_status_commit_names_thousands_of_actions(spec_repo, tmp_path):
    spec_repo.push()
    source = SpecRepository(str(spec_repo.remote), tmp_path / "agent")
    source.fetch()
    message = "status of 0123456789\n\n" + "\n".join(
        f"deployment-{n:05d}: SUCCESS start job {n:032x} with parallelism 1" for n in range(10000))

    commit = StatusStore(source, "flink-gitops/status").write(lambda: {"README.md": b"#\n"},
                                                              message)

    assert git(spec_repo.remote, "log", "-1", "--format=%B", commit).strip() == message


def test_a_policy_answers_an_unchanged_input_from_memory():
    from agent.policy import compile_policies, evaluate

    rego = 'package main\n\ndeny[msg] {\n  input.spec.parallelism > 4\n  msg := "too wide"\n}\n'
    caches = Caches()
    policies = compile_policies({"wide.rego": rego}, sets=caches.policies)
    asked = []
    ask = policies.sandbox.evaluate
    policies.sandbox.evaluate = lambda document: asked.append(document) or ask(document)

    narrow = evaluate(policies, {"spec": {"parallelism": 2}})
    again = evaluate(policies, {"spec": {"parallelism": 2}})
    wide = evaluate(policies, {"spec": {"parallelism": 8}})

    assert narrow == again and not narrow.denied
    assert wide.denials == ("wide.rego: too wide",)
    assert len(asked) == 2   # the worker is asked once per distinct input
    assert compile_policies({"wide.rego": rego}, sets=caches.policies) is policies


def test_a_clusters_flink_version_is_asked_once_across_cycles():
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from agent.flink.rest import FlinkClient

    asked = []

    class Config(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            body = json.dumps({"flink-version": "2.3.0"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Config)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        remembered = Caches().versions
        versions = [FlinkClient(url, versions=remembered).version()   # a client per cycle
                    for _ in range(3)]
    finally:
        server.shutdown()

    assert versions == ["2.3.0"] * 3 and asked == ["/config"]
