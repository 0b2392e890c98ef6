# A change whose new job would drop saved operator state (an operator lost its uid, a SQL query
# changed shape; restored with allowNonRestoredState) or cannot restore it at all, found by the
# plan's state check before anything stops, is denied for a deployment labelled env: prod,
# unless the spec opts in with the annotation flink-gitops.io/allow-state-loss: "true".
package main

import rego.v1

deny contains msg if {
	input.metadata.labels.env == "prod"
	input.plan.stateCheck.verdict in {"DROPS_STATE", "NOT_RESTORABLE"}
	not input.metadata.annotations["flink-gitops.io/allow-state-loss"] == "true"
	msg := sprintf("%s: %s of a prod deployment, and its state check says: %s; annotate flink-gitops.io/allow-state-loss: \"true\" to allow it", [input.metadata.name, input.plan.action, input.plan.stateCheck.summary])
}
