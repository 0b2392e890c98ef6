# A secret written in clear text into a spec is in git for good. Values whose names say they are
# secrets (Flink options, program arguments, the options of an inline SQL script's WITH clause)
# should be secret references instead: ${VAR} or ${file:PATH}, expanded on the agent's machine
# only when the job is started. A warning; a team makes it a deny with a policy of its own.
package main

import rego.v1

secret_name := `(password|passwd|secret|token|credential|access[-.]key|account\.key|private[-.]key|jaas|keytab|user[-.]info)`

reference := `\$\{(file:[^}]+|[A-Za-z_][A-Za-z0-9_]*)\}`

advice := "write a secret reference instead: ${VAR} or ${file:PATH}, expanded on the agent's machine"

warn contains msg if {
	some key, value in input.spec.template.spec.flinkConfiguration
	regex.match(secret_name, lower(key))
	not regex.match(reference, sprintf("%v", [value]))
	msg := sprintf("%s: flinkConfiguration %s holds a secret in clear text; %s", [input.metadata.name, key, advice])
}

warn contains msg if {
	some argument in arguments
	some found in regex.find_n(concat("", [`--?[\w.-]*`, secret_name, `[\w.-]*[= ]+[^\s]+`]), argument, -1)
	not regex.match(reference, found)
	msg := sprintf("%s: mainArgs %s holds a secret in clear text; %s", [input.metadata.name, split(found, " ")[0], advice])
}

warn contains msg if {
	some found in regex.find_n(concat("", [`'[^']*`, secret_name, `[^']*'\s*=\s*'[^']*'`]), input.spec.template.spec.artifact.sqlScript, -1)
	not regex.match(reference, found)
	msg := sprintf("%s: sqlScript option %s holds a secret in clear text; %s", [input.metadata.name, trim_space(split(found, "=")[0]), advice])
}

arguments := [input.spec.template.spec.artifact.mainArgs] if is_string(input.spec.template.spec.artifact.mainArgs)

arguments := [concat(" ", input.spec.template.spec.artifact.mainArgs)] if is_array(input.spec.template.spec.artifact.mainArgs)
