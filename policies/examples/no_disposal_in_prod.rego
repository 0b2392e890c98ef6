# An example for a spec repository's policies/ (not a built-in): savepoints of a deployment
# labelled env: prod are never disposed by the agent, whatever savepointRetention its spec or its
# target sets; the plan that would dispose them is denied (BLOCKED), naming them.
package main

import rego.v1

deny contains msg if {
	input.metadata.labels.env == "prod"
	some step in input.plan.steps
	step.kind == "DISPOSE_SAVEPOINT"
	msg := sprintf("%s: savepoints of prod deployments are kept; not disposing %s", [input.metadata.name, step.savepoint])
}
