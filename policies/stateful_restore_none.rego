# A STATEFUL upgrade takes a savepoint to carry the job's state over. With restoreStrategy NONE
# the new job starts empty anyway: the savepoint is taken and then not used. Usually a mistake;
# STATELESS says what is meant without the wait for a savepoint.
package main

import rego.v1

warn contains msg if {
	input.plan.action == "STATEFUL_UPGRADE"
	input.spec.restoreStrategy.kind == "NONE"
	msg := sprintf("%s: STATEFUL upgrade with restoreStrategy NONE takes a savepoint and then does not use it (the new job starts empty)", [input.metadata.name])
}
