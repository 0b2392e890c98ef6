# An example for a spec repository's policies/ (not a built-in): who may change production.
# A change (any planned action) of a deployment labelled env: prod needs a "Reviewed-by:" line
# in the message of the commit applied, and may not come from an author of bots.example.com.
# `input.commit` is the commit the agent applies (see the README's "Change control").
package main

import rego.v1

deny contains msg if {
	input.metadata.labels.env == "prod"
	input.plan.action != null
	not regex.match(`(^|\n)Reviewed-by: `, input.commit.message)
	msg := sprintf("%s: a production change needs a Reviewed-by: line in the commit message (commit %s by %s)", [input.metadata.name, substring(input.commit.sha, 0, 10), input.commit.author.email])
}

deny contains msg if {
	input.metadata.labels.env == "prod"
	input.plan.action != null
	endswith(input.commit.author.email, "@bots.example.com")
	msg := sprintf("%s: %s may not change production", [input.metadata.name, input.commit.author.email])
}
