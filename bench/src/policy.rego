# The std gates' proposal rules in Rego, for the benchmark's peer engine:
# the rules of plugins/{budget,path,acceptance} and the SDK's path rules
# (plugins/sdk/src/paths.rs), in their order, each rejection with the
# gate's code. `verdict` is one code per gate, "" for accept. Lengths are
# counted in characters where the gates count bytes, which the bench's
# ASCII mix makes the same.
package omk

import rego.v1

# --- budget ---------------------------------------------------------------

budget := "budget.zero" if input.proposal.budget_secs == 0

else := "budget.tokens-exhausted" if {
	input.budget.token_limit != null
	input.budget.tokens_spent >= input.budget.token_limit
}

else := "budget.usd-exhausted" if {
	input.budget.usd_limit_micros != null
	input.budget.usd_spent_micros >= input.budget.usd_limit_micros
}

else := "budget.time-exceeded" if {
	input.budget.time_limit_secs != null
	(input.budget.time_spent_secs + input.budget.time_committed_secs) + input.proposal.budget_secs > input.budget.time_limit_secs
}

else := ""

# --- the SDK's path rules ---------------------------------------------------

drive(p) if regex.match(`^[A-Za-z]:`, p)

git_name(part) if lower(substring(trim_right(part, ". "), 0, 4)) == ".git"

# The components that count: not empty, not `.`.
parts(p) := [x | some x in split(p, "/"); x != ""; x != "."]

part_violation(part) := "parent-dir" if part == ".."

else := "too-long" if count(part) > 255

else := "blank" if trim_space(part) == ""

else := "git" if git_name(part)

first_part_violation(p) := vs[0] if {
	vs := [v | some x in split(p, "/"); x != ""; x != "."; v := part_violation(x)]
	count(vs) > 0
}

violation(p) := "empty" if trim_space(p) == ""

else := "too-long" if count(p) > 4096

else := "control-char" if regex.match(`[\x00-\x1f\x7f-\x{9f}]`, p)

else := "absolute" if startswith(p, "/")

else := "absolute" if startswith(p, `\\`)

else := "backslash" if contains(p, `\`)

else := "absolute" if drive(p)

else := "home" if startswith(p, "~")

else := v if {
	v := first_part_violation(p)
}

else := "absolute" if drive(parts(p)[0])

else := "home" if startswith(parts(p)[0], "~")

normal(p) := "." if count(parts(p)) == 0

else := concat("/", parts(p))

within(_, r) if r == "."

within(p, r) if p == r

within(p, r) if startswith(p, concat("", [r, "/"]))

overlap(a, b) if within(a, b)

overlap(a, b) if within(b, a)

# --- path -------------------------------------------------------------------

roots := ["."] if count(input.roots) == 0

else := [normal(r) | some r in input.roots]

bad_root if {
	some r in input.roots
	violation(r)
}

# A path's code in a write or read set, or undefined when it is fine.
set_code(p) := concat("", ["path.", v]) if {
	v := violation(p)
}

else := "path.outside-roots" if {
	n := normal(p)
	not in_roots(n)
}

in_roots(n) if {
	some r in roots
	within(n, r)
}

first_code(set) := cs[0] if {
	cs := [c | some p in set; c := set_code(p)]
	count(cs) > 0
}

omk_dir(n) if lower(trim_right(split(n, "/")[0], ". ")) == ".omk"

writes := [normal(w) | some w in input.proposal.write_set]

reads := [normal(r) | some r in input.proposal.read_set]

# Tasks of the wave ordered with the proposal, either way, through
# dependencies: the graph of ids to their dependencies.
deps[t.id] := t.dependencies if {
	some t in input.accepted
	t.id != input.proposal.id
}

deps[input.proposal.id] := input.proposal.dependencies

ordered(t) if t.id in graph.reachable(deps, {input.proposal.id})

ordered(t) if input.proposal.id in graph.reachable(deps, {t.id})

clash(t) if {
	some w in writes
	some x in array.concat([normal(y) | some y in t.write_set; not violation(y)], [normal(y) | some y in t.read_set; not violation(y)])
	overlap(w, x)
}

clash(t) if {
	some r in reads
	some x in [normal(y) | some y in t.write_set; not violation(y)]
	overlap(r, x)
}

conflict if {
	some t in input.accepted
	t.id != input.proposal.id
	not ordered(t)
	clash(t)
}

path := "path.bad-root" if bad_root

else := c if {
	c := first_code(input.proposal.write_set)
}

else := "path.omk" if {
	some w in writes
	omk_dir(w)
}

else := c if {
	c := first_code(input.proposal.read_set)
}

else := "path.conflict" if conflict

else := ""

# --- acceptance -------------------------------------------------------------

command(c) := trim_space(substring(trim_space(c), 4, -1)) if startswith(trim_space(c), "run:")

acceptance := "acceptance.missing" if count([c | some c in input.proposal.acceptance; trim_space(c) != ""]) == 0

else := "acceptance.empty-command" if {
	some c in input.proposal.acceptance
	command(c) == ""
}

else := ""

verdict := [budget, path, acceptance]
