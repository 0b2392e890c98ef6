# restoreStrategy LATEST_STATE restores the newest retained checkpoint. A job that does not
# checkpoint has none, so every "last-state" restore would silently fall back to an old savepoint
# or to empty state. Checkpointing must be configured in the deployment.
package main

import rego.v1

deny contains msg if {
	input.spec.restoreStrategy.kind == "LATEST_STATE"
	not input.spec.template.spec.flinkConfiguration["execution.checkpointing.interval"]
	msg := sprintf("%s: restoreStrategy LATEST_STATE needs checkpoints, but execution.checkpointing.interval is not set in flinkConfiguration", [input.metadata.name])
}
