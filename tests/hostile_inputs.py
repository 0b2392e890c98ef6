"""The bad-input corpus: what a push can turn a running deployment's spec file into, one case a
line, and the problem each must end as (never an exception, never a stopped job).

Each case takes the valid spec file of deployment `name` and returns the file's new content
(text, or bytes for encodings). `held`: the file no longer says which deployment it holds (the
deployment is held by its file, see `agent.deletion`) — otherwise the problem names the
deployment itself. Add a case by adding a line; every test over the corpus picks it up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import yaml

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
    Case("jar-scheme-unknown", sub("jobs/counter.jar", "ftp://example.com/x.jar"),
         "scheme 'ftp' is not supported"),
    Case("maven-no-version", sub("jobs/counter.jar", "maven://org.example:counter"),
         "its version is missing"),
    Case("savepoint-interval-malformed", sub("  upgradeStrategy", "  periodicSavepointInterval: "
                                             "soon\n  upgradeStrategy"), "is not a duration"),
    Case("savepoint-retention-zero", sub("  upgradeStrategy", "  savepointRetention: "
                                         "{{maxCount: 0}}\n  upgradeStrategy"),
         "greater than or equal to 1"),
    Case("health-policy-empty", sub("  upgradeStrategy", "  healthPolicy: {{}}\n  "
                                    "upgradeStrategy"), "healthPolicy needs maxRestarts"),
    Case("redeploy-without-savepoint", sub("  upgradeStrategy", "  savepointRedeployNonce: 1\n"
                                           "  upgradeStrategy"), "set initialSavepointPath"),
    Case("secret-variable-missing", sub("--keys 4", "--keys 4 --password ${{FG_NEVER_SET}}"),
         "has no variable FG_NEVER_SET"),
    Case("secret-file-missing", sub("interval: 1s", "interval: 1s\n        db.password: "
                                    "${{file:/nonexistent/fg-secret}}"), "No such file"),
    Case("secret-file-endless", sub("interval: 1s", "interval: 1s\n        db.password: "
                                    "${{file:/dev/zero}}"), "over 65,536 bytes"),
    Case("jar-missing", sub("jobs/counter.jar", "jobs/nothing.jar"),
         "no file jobs/nothing.jar in the spec repository"),
    Case("sql-file-outside-repo", sub("jarUri: jobs/counter.jar\n        entryClass: "
                                      "com.example.Counter\n        mainArgs: --rate 20 --keys 4",
                                      "kind: SQLSCRIPT\n        sqlScriptFile: ../secrets.sql"),
         "leaves the spec repository"),
    Case("dependency-scheme-unknown", sub("mainArgs: --rate 20 --keys 4", "mainArgs: --rate 20 "
                                          "--keys 4\n        additionalDependencies: "
                                          "[ftp://h/u.jar]"), "scheme 'ftp' is not supported"),
    Case("dependency-missing", sub("mainArgs: --rate 20 --keys 4", "mainArgs: --rate 20 --keys 4"
                                   "\n        additionalDependencies: [jobs/udf.jar]"),
         "additionalDependencies[0] jobs/udf.jar: no file jobs/udf.jar in the spec repository"),
    Case("tab-indentation", sub("  name: {name}", "\tname: {name}"), "YAML syntax error",
         held=True),
    Case("unclosed-quote", sub("labels: {{team: test}}", 'labels: {{team: "test}}'),
         "YAML syntax error", held=True),
    Case("unclosed-flow-mapping", sub("labels: {{team: test}}", "labels: {{team: test"),
         "YAML syntax error", held=True),
    Case("mapping-in-a-value", sub("state: RUNNING", "state: RUNNING: now"),
         "YAML syntax error", held=True),
    Case("bad-indentation", sub("  deploymentTargetName", "   deploymentTargetName"),
         "YAML syntax error", held=True),
    Case("control-character", sub("team: test", "team: te\x01st"), "YAML syntax error",
         held=True),
    Case("split-by-a-separator", sub("  template:", "---\n  template:"), "spec.template"),
    Case("set-tag", sub("{{team: test}}", "!!set {{team: null}}"), "is not allowed"),
    Case("omap-tag", sub("{{team: test}}", "!!omap [{{team: test}}]"), "is not allowed"),
    Case("custom-tag", sub("state: RUNNING", "state: !vault RUNNING"), "is not allowed"),
    Case("float-tag-on-text", sub("parallelism: 1", "parallelism: !!float abc"),
         "'abc' is not a valid float"),
    Case("bool-tag-on-text", sub("state: RUNNING", "state: RUNNING\n  stopWithDrain: !!bool maybe"),
         "'maybe' is not a valid bool"),
    Case("null-tag-on-text", sub("state: RUNNING", "state: !!null RUNNING"),
         "'RUNNING' is not a valid null"),
    Case("python-object", sub("parallelism: 1", "parallelism: !!python/object/apply:os.system "
                                                "['true']"), "is not allowed in a spec"),
    Case("kind-a-list", sub("kind: Deployment", "kind: [Deployment]"), "no kind", held=True),
    Case("kind-other-case", sub("kind: Deployment", "kind: DEPLOYMENT"), "did you mean"),
    Case("target-kind-typo", sub("kind: Deployment", "kind: DeploymentTarge"),
         "did you mean 'DeploymentTarget'", held=True),
    Case("name-too-long", sub("name: {name}", "name: " + "a" * 64), "metadata.name",
         held=True),
    Case("name-uppercase", sub("name: {name}", "name: Orders"), "metadata.name", held=True),
    Case("name-a-mapping", sub("name: {name}", "name: {{a: b}}"), "metadata.name", held=True),
    Case("metadata-a-list", sub("metadata:\n  name: {name}\n  labels: {{team: test}}\n",
                                "metadata: [a]\n"), "metadata", held=True),
    Case("spec-a-string", sub("spec:\n  state: RUNNING", "spec: RUNNING\nx:\n  state: RUNNING"),
         "Deployment spec"),
    Case("wide-alias-use", add("x: &x [" + ", ".join(["a"] * 1000) + "]\ny: [" +
                               ", ".join(["*x"] * 200) + "]\n"), "more than 100,000 values"),
]


def _set(path: tuple[str, ...], value: Any) -> Callable[[str, str], str]:
    """The valid spec with the field at `path` set to `value`, written as YAML."""
    def make(text: str, name: str) -> str:
        document = yaml.safe_load(text)
        node = document
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
        return yaml.safe_dump(document, sort_keys=False)
    return make


ARTIFACT = ("spec", "template", "spec", "artifact")
WRONG_VALUES: dict[tuple[str, ...], list[Any]] = {
    ("metadata", "labels"): ["text", ["a"], {"a": ["b"]}, {"a": {"b": 1}}],
    ("metadata", "annotations"): ["text", ["a"], {"a": [1]},
                                  {"flink-gitops.io/adopt-job-id": "my-job"}],
    ("metadata", "namespace"): [["a"], {"a": 1}],
    ("spec", "state"): ["RUNING", "running-ish", 1, ["RUNNING"], {"a": 1}],
    ("spec", "deploymentTargetName"): ["Not_A_Label", 5, ["test"], ""],
    ("spec", "sessionClusterName"): ["shared", 5, "Not_A_Label"],
    ("spec", "upgradeStrategy"): ["STATEFUL", {"kind": "STATEFULL"}, {"kind": 1},
                                  {"kind": "STATEFUL", "extra": 1}],
    ("spec", "restoreStrategy"): ["LATEST", {"kind": "LATEST"}, {"allowNonRestoredState": "yes"},
                                  {"allowNonRestoredState": 1}, {"kind": None}],
    ("spec", "maxSavepointCreationAttempts"): [0, -1, 101, "4", 4.5, True, 10 ** 9],
    ("spec", "maxJobCreationAttempts"): [0, -3, 1000, "x", [1], False],
    ("spec", "stopWithDrain"): ["true", 1, [], {"a": 1}],
    ("spec", "initialSavepointPath"): [5, ["x"], {"a": 1}],
    ("spec", "restartNonce"): [[1], {"a": 1}, 1.5],
    ("spec", "savepointTriggerNonce"): [[1], {"a": 1}, 2.5],
    ("spec", "template"): ["x", [], 5],
    ("spec", "template", "spec"): ["x", [1]],
    ("spec", "template", "metadata"): ["x", {"annotations": "x"}],
    ARTIFACT + ("kind",): ["JARR", "PYTHON", 1, ["JAR"]],
    ARTIFACT + ("jarUri",): [5, ["a"], "", {"a": 1}],
    ARTIFACT + ("entryClass",): [5, ["a"], {"a": 1}],
    ARTIFACT + ("mainArgs",): [5, {"a": 1}, "x" * 70_000, [1, 2]],
    ARTIFACT + ("sqlScript",): ["SELECT 1", 5],
    ARTIFACT + ("pythonScript",): ["job.py", 5, ["job.py"]],
    ARTIFACT + ("additionalDependencies",): ["jobs/udf.jar", [5], ["../udf.jar"], [""],
                                            ["jobs/udf.jar"] * 51, {"a": 1}],
    ARTIFACT + ("flinkVersion",): [1.18, ["1.18"]],
    ("spec", "template", "spec", "parallelism"): [0, -1, 32_769, "2", 2.5, True, [2]],
    ("spec", "template", "spec", "flinkConfiguration"): ["text", ["a"], {"a": {"b": 1}}],
    ("spec", "template", "spec", "numberOfTaskManagers"): ["two", 1.5],
    ("spec", "unknownField"): [1],
    ("spec", "template", "spec", "paralelism"): [2],
    ("statuss",): [{}],
    ("apiVersion",): ["v2", 1],
}
"""Every field of a Deployment with values of the wrong type or out of bounds."""


def _field_cases() -> list[Case]:
    cases = []
    for path, values in WRONG_VALUES.items():
        where = ".".join(path[:len(ARTIFACT)] if path[:len(ARTIFACT)] == ARTIFACT else path)
        for index, value in enumerate(values):
            cases.append(Case(f"{'.'.join(path)}={index}", _set(path, value), where))
    return cases


CASES += _field_cases()


# --- policies: what a pull request's .rego file can do ---------------------------------------

@dataclass(frozen=True)
class PolicyCase:
    id: str
    text: str | bytes
    denial: str | None      # a fragment of the denial naming the file, or None: it denies nothing

    def __str__(self) -> str:
        return self.id


RULE = "package main\nimport rego.v1\n\n"
POLICY_CASES = [
    PolicyCase("syntax-error", RULE + "deny contains msg if {\n  x := \n}\n", ":5: policy does "
               "not compile"),
    PolicyCase("no-package", "deny[msg] { msg := 1 }\n", "policy does not compile"),
    PolicyCase("empty-file", "", "policy does not compile"),
    PolicyCase("binary-file", bytes(range(256)), "policy does not compile"),
    PolicyCase("http-send", RULE + 'deny contains "x" if http.send({"method": "get", '
               '"url": "http://127.0.0.1:1"})\n', None),   # the engine has no network builtins
    PolicyCase("conflicting-values", RULE + "x := 1 if input.spec\nx := 2 if input.spec\n"
               'deny contains "never" if x == 3\n', "evaluating deny failed"),
    PolicyCase("slow", RULE + 'warn contains "x" if count({x | some i in numbers.range(1, 1000); '
               "some j in numbers.range(1, 1000); x := (i * j) % 7}) > 0\n", "took over 2s"),
    PolicyCase("memory", RULE + 'warn contains "x" if count(numbers.range(1, 300000000)) > 0\n',
               "used over 512 MiB"),
    PolicyCase("huge-file", RULE + "# padding\n" * 30_000, "over the limit of 262,144"),
    PolicyCase("huge-message", RULE + 'deny contains concat("", [x | some x in '
               'array.concat(["a"], [y | some i in numbers.range(1, 100000); y := "bbbbbbbbbb"])])'
               " if true\n", "characters, cut"),
    PolicyCase("many-messages", RULE + 'deny contains sprintf("m%d", [i]) if some i in '
               "numbers.range(1, 1000)\n", "m1"),
    PolicyCase("environment-spy", RULE + 'warn contains sprintf("%v", [opa.runtime()]) if true\n',
               None),
    PolicyCase("undefined-reference", RULE + 'deny contains "x" if input.no.such.field == 1\n',
               None),
    PolicyCase("deny-everything", RULE + 'deny contains "[/x] held" if true\n', "[/x] held"),
    PolicyCase("not-utf-8", (RULE + 'deny contains "caf\xe9" if true\n').encode("latin-1"),
               "caf"),
]


# --- webhooks: what anyone who reaches the agent's port can send ------------------------------

@dataclass(frozen=True)
class WebhookCase:
    id: str
    head: bytes            # header lines after the request line, each ending in \r\n
    body: bytes
    status: int

    def __str__(self) -> str:
        return self.id


def _length(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n" % len(body)


GOOD_BODY = b'{"ref": "refs/heads/main"}'
WEBHOOK_CASES = [
    WebhookCase("negative-length", b"Content-Length: -1\r\n", b"", 400),
    WebhookCase("text-length", b"Content-Length: abc\r\n", b"", 400),
    WebhookCase("no-length", b"", b"", 411),
    WebhookCase("huge-length", b"Content-Length: 99999999999\r\n", b"", 413),
    WebhookCase("no-signature", _length(GOOD_BODY), GOOD_BODY, 401),
    WebhookCase("wrong-signature", b"X-Hub-Signature-256: sha256=00\r\n" + _length(GOOD_BODY),
                GOOD_BODY, 401),
    WebhookCase("non-ascii-signature", b"X-Hub-Signature-256: sha256=\xc3\xa9\r\n" +
                _length(GOOD_BODY), GOOD_BODY, 401),
    WebhookCase("non-ascii-gitlab-token", b"X-Gitlab-Token: \xff\xfe\r\n" + _length(GOOD_BODY),
                GOOD_BODY, 401),
    WebhookCase("empty-gitlab-token", b"X-Gitlab-Token: \r\n" + _length(GOOD_BODY), GOOD_BODY,
                401),
    WebhookCase("gitea-wrong", b"X-Gitea-Signature: 00\r\n" + _length(GOOD_BODY), GOOD_BODY,
                401),
]
"""Calls refused before the signature is checked or because it does not match; the signed
ones (a valid signature over a malformed body) are made by the test, which knows the secret."""

SIGNED_BODIES = {   # signed correctly, malformed all the same: 400
    "ref-a-number": b'{"ref": 5}', "ref-null": b'{"ref": null}', "no-ref": b"{}",
    "a-list": b"[]", "not-json": b"not json", "deep-json": b"[" * 100_000,
    "latin-1": b'{"ref": "caf\xe9"}',
}


# --- Flink answers: what a cluster (or something in its place) can send back -------------------

@dataclass(frozen=True)
class AnswerCase:
    id: str
    answer: object          # bytes, (status, bytes), or a function of Flink's real answer
    observed: bool          # True: the odd part is skipped, the cluster still observed

    def __str__(self) -> str:
        return self.id


def _with_entries(*entries) -> Callable[[bytes], bytes]:
    """Flink's real jobs overview with odd entries added (the real jobs stay)."""
    def fake(real: bytes) -> bytes:
        import json
        answer = json.loads(real)
        answer["jobs"] += list(entries)
        return json.dumps(answer).encode()
    return fake


def _each_job(**fields) -> Callable[[bytes], bytes]:
    def fake(real: bytes) -> bytes:
        import json
        answer = json.loads(real)
        for job in answer["jobs"]:
            job.update(fields)
        return json.dumps(answer).encode()
    return fake


ANSWER_CASES = [
    AnswerCase("empty-body", b"", False),
    AnswerCase("html", b"<html><body>502 gateway</body></html>", False),
    AnswerCase("a-json-list", b"[]", False),
    AnswerCase("jobs-a-string", b'{"jobs": "many"}', False),
    AnswerCase("jobs-null", b'{"jobs": null}', False),
    AnswerCase("deep-json", b"[" * 100_000, False),
    AnswerCase("status-500-html", (500, b"<html>Internal Server Error</html>"), False),
    AnswerCase("status-404", (404, b'{"errors": ["Not found: /jobs/overview"]}'), False),
    AnswerCase("status-401", (401, b"unauthorized"), False),
    AnswerCase("status-503", (503, b"busy"), False),
    AnswerCase("huge", b'{"jobs": [' + b'{"jid": "0"},' * 3_500_000 + b'{}]}', False),
    AnswerCase("non-hex-id", _with_entries({"jid": "z" * 32, "state": "RUNNING"}), True),
    AnswerCase("numeric-id", _with_entries({"jid": 12345, "state": "RUNNING"}), True),
    AnswerCase("entry-a-string", _with_entries("job"), True),
    AnswerCase("entry-null", _with_entries(None), True),
    AnswerCase("short-id", _with_entries({"jid": "abc", "state": "RUNNING"}), True),
    AnswerCase("tasks-a-string", _each_job(tasks="many"), True),
    AnswerCase("start-time-text", _each_job(**{"start-time": "soon"}), True),
    AnswerCase("name-a-list", _each_job(name=["a"]), True),
    AnswerCase("unknown-state", _each_job(state="WEIRD"), False),
    AnswerCase("state-a-number", _each_job(state=5), False),
]
"""`observed` False: the cluster (or the job) cannot be read this cycle, so nothing is done and
the deployment is reported; True: the odd entries are skipped and the job is seen as it is."""


if __name__ == "__main__":   # the corpus's size, by kind
    print(f"{len(CASES)} spec-file cases: {sum(c.held for c in CASES)} make the file "
          f"unreadable, {sum(not c.held for c in CASES)} are refused with the deployment's name")
    print(f"{len(POLICY_CASES)} policy cases, {len(WEBHOOK_CASES) + len(SIGNED_BODIES)} webhook "
          f"cases, {len(ANSWER_CASES)} Flink answer cases; "
          f"{len(CASES) + len(POLICY_CASES) + len(WEBHOOK_CASES) + len(SIGNED_BODIES) + len(ANSWER_CASES)}"
          " in all")
