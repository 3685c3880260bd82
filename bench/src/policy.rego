# The std gates' proposal rules in Rego, for the benchmark's peer engine:
# the rules of plugins/{budget,path,acceptance} and the SDK's path rules
# (plugins/sdk/src/paths.rs), in their order, each rejection with the
# gate's code. `verdict` is one code per gate, "" for accept. Lengths are
# counted in characters where the gates count bytes, which the bench's
# ASCII mix makes the same.
#
# First-match rules are written without `else`, so that regorus's RVM
# runs them: every check that holds adds `[rank, code]` to a set, and the
# verdict is the code of the smallest rank (`min` of the set; `default`
# when none holds). The path rules' functions are total, `""` meaning
# fine: regorus 0.14's RVM keeps an undefined function result in a
# comprehension (as `<undefined>`) where Rego drops it.
package omk

import rego.v1

# --- budget ---------------------------------------------------------------

budget_hits contains [1, "budget.zero"] if input.proposal.budget_secs == 0

budget_hits contains [2, "budget.tokens-exhausted"] if {
	input.budget.token_limit != null
	input.budget.tokens_spent >= input.budget.token_limit
}

budget_hits contains [3, "budget.usd-exhausted"] if {
	input.budget.usd_limit_micros != null
	input.budget.usd_spent_micros >= input.budget.usd_limit_micros
}

budget_hits contains [4, "budget.time-exceeded"] if {
	input.budget.time_limit_secs != null
	(input.budget.time_spent_secs + input.budget.time_committed_secs) + input.proposal.budget_secs > input.budget.time_limit_secs
}

default budget := ""

budget := min(budget_hits)[1]

# --- the SDK's path rules ---------------------------------------------------

drive(p) if regex.match(`^[A-Za-z]:`, p)

git_name(part) if lower(substring(trim_right(part, ". "), 0, 4)) == ".git"

# The components that count: not empty, not `.`.
parts(p) := [x | some x in split(p, "/"); x != ""; x != "."]

part_hits(part) := ((({[1, "parent-dir"] | part == ".."}
	| {[2, "too-long"] | count(part) > 255})
	| {[3, "blank"] | trim_space(part) == ""})
	| {[4, "git"] | git_name(part)})

part_violation(part) := min(part_hits(part) | {[99, ""]})[1]

# The first of the whole sequence of `p`'s parts with a violation.
first_part_violation(p) := concat("", array.slice(
	[v | some x in split(p, "/"); x != ""; x != "."; v := part_violation(x); v != ""],
	0, 1,
))

violation_hits(p) := (((((((((({[1, "empty"] | trim_space(p) == ""}
	| {[2, "too-long"] | count(p) > 4096})
	| {[3, "control-char"] | regex.match(`[\x00-\x1f\x7f-\x{9f}]`, p)})
	| {[4, "absolute"] | startswith(p, "/")})
	| {[5, "absolute"] | startswith(p, `\\`)})
	| {[6, "backslash"] | contains(p, `\`)})
	| {[7, "absolute"] | drive(p)})
	| {[8, "home"] | startswith(p, "~")})
	| {[9, v] | v := first_part_violation(p); v != ""})
	| {[10, "absolute"] | count(parts(p)) > 0; drive(parts(p)[0])})
	| {[11, "home"] | count(parts(p)) > 0; startswith(parts(p)[0], "~")})

violation(p) := min(violation_hits(p) | {[99, ""]})[1]

normal(p) := "." if count(parts(p)) == 0

normal(p) := concat("/", parts(p)) if count(parts(p)) > 0

within(_, r) if r == "."

within(p, r) if p == r

within(p, r) if startswith(p, concat("", [r, "/"]))

overlap(a, b) if within(a, b)

overlap(a, b) if within(b, a)

# --- path -------------------------------------------------------------------

# Every path of the decision, each checked and normalised once (rules are
# evaluated once per decision; a function at each call).
all_paths := (((({p | some p in input.roots}
	| {p | some p in input.proposal.write_set})
	| {p | some p in input.proposal.read_set})
	| {p | some t in input.accepted; some p in t.write_set})
	| {p | some t in input.accepted; some p in t.read_set})

violations := {p: v | some p in all_paths; v := violation(p)}

norms := {p: n | some p in all_paths; n := normal(p)}

roots := ["."] if count(input.roots) == 0

roots := [norms[r] | some r in input.roots] if count(input.roots) > 0

bad_root if {
	some r in input.roots
	violations[r] != ""
}

in_roots(n) if {
	some r in roots
	within(n, r)
}

# Each path's code in a write or read set, "" when it is fine.
codes := {p: c | some p in all_paths; c := set_code(p)}

set_code(p) := concat("", ["path.", violations[p]]) if violations[p] != ""

set_code(p) := "path.outside-roots" if {
	violations[p] == ""
	not in_roots(norms[p])
}

set_code(p) := "" if {
	violations[p] == ""
	in_roots(norms[p])
}

first_code(paths) := concat("", array.slice([c | some p in paths; c := codes[p]; c != ""], 0, 1))

omk_dir(n) if lower(trim_right(split(n, "/")[0], ". ")) == ".omk"

writes := [norms[w] | some w in input.proposal.write_set]

reads := [norms[r] | some r in input.proposal.read_set]

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
	some x in array.concat([norms[y] | some y in t.write_set; violations[y] == ""], [norms[y] | some y in t.read_set; violations[y] == ""])
	overlap(w, x)
}

clash(t) if {
	some r in reads
	some x in [norms[y] | some y in t.write_set; violations[y] == ""]
	overlap(r, x)
}

conflict if {
	some t in input.accepted
	t.id != input.proposal.id
	not ordered(t)
	clash(t)
}

path_hits contains [1, "path.bad-root"] if bad_root

path_hits contains [2, c] if {
	c := first_code(input.proposal.write_set)
	c != ""
}

path_hits contains [3, "path.omk"] if {
	some w in writes
	omk_dir(w)
}

path_hits contains [4, c] if {
	c := first_code(input.proposal.read_set)
	c != ""
}

path_hits contains [5, "path.conflict"] if conflict

default path := ""

path := min(path_hits)[1]

# --- acceptance -------------------------------------------------------------

command(c) := trim_space(substring(trim_space(c), 4, -1)) if startswith(trim_space(c), "run:")

acceptance_hits contains [1, "acceptance.missing"] if count([c | some c in input.proposal.acceptance; trim_space(c) != ""]) == 0

acceptance_hits contains [2, "acceptance.empty-command"] if {
	some c in input.proposal.acceptance
	command(c) == ""
}

default acceptance := ""

acceptance := min(acceptance_hits)[1]

verdict := [budget, path, acceptance]
