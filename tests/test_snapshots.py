"""Memos kept in the work dir for a fresh process (`agent.snapshots`): a process starts from the
policy verdicts an earlier one kept, and a snapshot that cannot be trusted whole is rebuilt (the
next process is only slower, and right)."""

from __future__ import annotations

import json

from agent.policy import built_in_policies, compile_policies, policy_input
from agent.snapshots import append_snapshot, load_snapshot, save_snapshot
from conftest import deployment


def test_a_snapshot_keeps_every_batch_that_checks_and_skips_the_others(tmp_path):
    path = tmp_path / "cache" / "memo.jsonl"
    assert not append_snapshot(path, "answers", 1, {"a": 1})   # no file yet: written whole
    save_snapshot(path, "answers", 1, {"a": [1, 2], "b": "x"})
    assert append_snapshot(path, "answers", 1, {"c": 3})
    assert append_snapshot(path, "answers", 1, {"b": "y"})
    assert load_snapshot(path, "answers", 1) == {"a": [1, 2], "b": "y", "c": 3}
    assert load_snapshot(path, "answers", 2) == {}            # another format version
    assert load_snapshot(path, "other", 1) == {}
    assert not append_snapshot(path, "answers", 2, {"d": 4})  # (written whole by the caller)
    text = path.read_text()
    path.write_text(text.replace('"c":3', '"c":4'))           # edited: its batch is left out
    assert load_snapshot(path, "answers", 1) == {"a": [1, 2], "b": "y"}
    path.write_text(text[:-5])                                 # a torn last batch
    assert load_snapshot(path, "answers", 1) == {"a": [1, 2], "b": "x", "c": 3}
    path.write_bytes(b"\x00\xff" * 10)                         # not even text
    assert load_snapshot(path, "answers", 1) == {}
    assert load_snapshot(tmp_path / "missing.jsonl", "answers", 1) == {}
    assert [p.name for p in path.parent.iterdir()] == ["memo.jsonl"]   # no scratch file left


def test_a_snapshot_holds_no_secret_the_agent_knows(tmp_path):
    from agent.logs import register_secret

    register_secret("snapshot-canary-5e1b")
    path = tmp_path / "memo.jsonl"
    save_snapshot(path, "answers", 1, {"a": "told snapshot-canary-5e1b"})
    append_snapshot(path, "answers", 1, {"b": ["snapshot-canary-5e1b"]})
    assert b"snapshot-canary-5e1b" not in path.read_bytes()
    assert load_snapshot(path, "answers", 1) == {"a": "told ***", "b": ["***"]}


def inputs() -> list[dict]:
    return [policy_input(deployment(parallelism=p, restore=r), "local", "local",
                         {"action": "STATEFUL_UPGRADE", "state": "DISCARDED"}, None)
            for p in (1, 2, 3) for r in ("NONE", "LATEST_SAVEPOINT")]


def test_a_fresh_policy_set_asks_nothing_already_asked_and_a_corrupt_snapshot_is_rebuilt(
        tmp_path):
    first = compile_policies(built_in_policies(), snapshots=tmp_path)
    verdicts = [first.verdict(document) for document in inputs()]
    assert first.asked == 6
    first.save()
    [snapshot] = tmp_path.glob("policy-verdicts-*.jsonl")
    assert len(snapshot.read_text().splitlines()) == 2   # the header, one batch

    again = compile_policies(built_in_policies(), snapshots=tmp_path)   # as a fresh process
    assert [again.verdict(document) for document in inputs()] == verdicts
    assert again.asked == 0
    other = compile_policies({**built_in_policies(), "policies/x.rego": "package main\n"},
                             snapshots=tmp_path)                  # other files: other verdicts
    other.verdict(inputs()[0])
    assert other.asked == 1

    header, batch = snapshot.read_text().splitlines()
    checksum, _, text = batch.partition(" ")
    entries = json.loads(text)
    entries[next(iter(entries))][0] = ["forged denial"]
    snapshot.write_text(f"{header}\n{checksum} {json.dumps(entries)}\n")
    rebuilt = compile_policies(built_in_policies(), snapshots=tmp_path)
    assert [rebuilt.verdict(document) for document in inputs()] == verdicts
    assert rebuilt.asked == 6
    rebuilt.save()   # one more batch, not the file again
    assert len(snapshot.read_text().splitlines()) == 3
    for each in (first, again, other, rebuilt):
        each.sandbox.close()
