# The std gates' proposal rules in Rego, for the benchmark's peer engine.
# Same rules as plugins/{budget,path,acceptance} on the benchmark's inputs
# (paths already normal; no control characters in the generated mix).
package omk

import rego.v1

default budget := false

budget if input.proposal.budget_secs == 0

budget if {
	input.budget.time_limit_secs != null
	input.budget.time_spent_secs + input.budget.time_committed_secs + input.proposal.budget_secs > input.budget.time_limit_secs
}

budget if {
	input.budget.token_limit != null
	input.budget.tokens_spent >= input.budget.token_limit
}

paths contains p if some p in input.proposal.write_set

paths contains p if some p in input.proposal.read_set

bad(p) if p == ""

bad(p) if startswith(p, "/")

bad(p) if startswith(p, "~")

bad(p) if contains(p, "\\")

bad(p) if {
	some part in split(p, "/")
	part == ".."
}

bad(p) if {
	some part in split(p, "/")
	startswith(lower(part), ".git")
}

within(p, r) if r == "."

within(p, r) if p == r

within(p, r) if startswith(p, concat("", [r, "/"]))

in_roots(p) if {
	some r in input.roots
	within(p, r)
}

overlap(a, b) if within(a, b)

overlap(a, b) if within(b, a)

ordered(t) if t.id in input.proposal.dependencies

conflict if {
	some t in input.accepted
	not ordered(t)
	some w in input.proposal.write_set
	some x in array.concat(t.write_set, t.read_set)
	overlap(w, x)
}

conflict if {
	some t in input.accepted
	not ordered(t)
	some r in input.proposal.read_set
	some x in t.write_set
	overlap(r, x)
}

default path := false

path if {
	some p in paths
	bad(p)
}

path if {
	some p in paths
	not bad(p)
	not in_roots(p)
}

path if conflict

default acceptance := false

acceptance if count([c | some c in input.proposal.acceptance; trim_space(c) != ""]) == 0

acceptance if {
	some c in input.proposal.acceptance
	startswith(trim_space(c), "run:")
	trim_space(substring(trim_space(c), 4, -1)) == ""
}

verdict := [budget, path, acceptance]
