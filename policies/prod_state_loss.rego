# A change that throws away the running job's state (a STATELESS upgrade or a restart that starts
# the new job empty) of a deployment labelled env: prod is denied, unless the spec opts in with
# the annotation flink-gitops.io/allow-state-loss: "true".
package main

import rego.v1

deny contains msg if {
	input.metadata.labels.env == "prod"
	input.plan.state == "DISCARDED"
	not input.metadata.annotations["flink-gitops.io/allow-state-loss"] == "true"
	msg := sprintf("%s: %s would discard the state of a prod deployment; annotate flink-gitops.io/allow-state-loss: \"true\" to allow it", [input.metadata.name, input.plan.action])
}
