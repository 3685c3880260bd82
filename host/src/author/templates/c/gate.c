// The gate `{{name}}`. `omk gate build` writes the bindings of wit/ to
// gen/, compiles this file with clang for wasm32-wasi and encodes a
// component. Use no stdio (printf, files): those need WASI, which the
// component would then import. It implements `omk:gate@0.3.0`
// (wit/gate.wit): omk calls validate_config once at load, then the checks
// of the stages describe lists. An action's `command` is what omk parsed
// from a command line (its simple commands, their words after quote
// removal, their redirections); its `tool` is a tool call (server, tool,
// arguments as JSON); each `is_some` only when the action has one.
#include <stdlib.h>
#include <string.h>

#include "gate.h"

typedef exports_omk_gate_policy_decision_t decision_t;
typedef exports_omk_gate_policy_action_decision_t action_decision_t;

static const char SECRETS[] = "secrets";

// Whether the n bytes at s start with the C string prefix.
static int starts_with(const uint8_t *s, size_t n, const char *prefix) {
  size_t p = strlen(prefix);
  return n >= p && memcmp(s, prefix, p) == 0;
}

static int under_secrets(const gate_string_t *path) {
  const uint8_t *s = path->ptr;
  size_t n = path->len;
  while (starts_with(s, n, "./")) {
    s += 2;
    n -= 2;
  }
  size_t k = strlen(SECRETS);
  return n >= k && memcmp(s, SECRETS, k) == 0 && (n == k || s[k] == '/');
}

// A malloc'd string of `a`, the n bytes at `b`, and `c` (omk frees it).
static gate_string_t concat(const char *a, const uint8_t *b, size_t n, const char *c) {
  size_t la = strlen(a), lc = strlen(c);
  gate_string_t out;
  out.len = la + n + lc;
  out.ptr = malloc(out.len ? out.len : 1);
  memcpy(out.ptr, a, la);
  memcpy(out.ptr + la, b, n);
  memcpy(out.ptr + la + n, c, lc);
  return out;
}

static void refusal(const gate_string_t *path, exports_omk_gate_policy_rejection_t *r) {
  gate_string_dup(&r->code, "{{name}}.secrets");
  r->reason =
      concat("`", path->ptr, path->len, "` is under `secrets/`, which no task may read or change");
}

static void reject(const gate_string_t *path, decision_t *ret) {
  ret->tag = EXPORTS_OMK_GATE_POLICY_DECISION_REJECT;
  refusal(path, &ret->val.reject);
}

// Whether the n bytes at s hold the C string needle.
static int holds(const uint8_t *s, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; k <= n && i <= n - k; i++)
    if (memcmp(s + i, needle, k) == 0) return 1;
  return 0;
}

// A path under secrets/ the action names: its target, a word or a
// redirection of a command it runs, or (for a tool call, whose arguments
// are JSON: this looks for the folder's name in the text) its arguments.
static const gate_string_t *secret_in(const exports_omk_gate_policy_agent_action_t *a) {
  if (under_secrets(&a->target)) return &a->target;
  if (a->command.is_some) {
    const exports_omk_gate_policy_list_simple_command_t *cs = &a->command.val.commands;
    for (size_t i = 0; i < cs->len; i++) {
      for (size_t w = 0; w < cs->ptr[i].words.len; w++)
        if (under_secrets(&cs->ptr[i].words.ptr[w])) return &cs->ptr[i].words.ptr[w];
      for (size_t r = 0; r < cs->ptr[i].redirections.len; r++)
        if (under_secrets(&cs->ptr[i].redirections.ptr[r].target))
          return &cs->ptr[i].redirections.ptr[r].target;
    }
  }
  if (a->tool.is_some) {
    const gate_string_t *args = &a->tool.val.arguments;
    if (holds(args->ptr, args->len, "\"secrets/") || holds(args->ptr, args->len, "\"./secrets/"))
      return args;
  }
  return 0;
}

// This gate takes no settings: any but `{}` stops its load (false, with
// the rejection in `err`).
bool exports_omk_gate_policy_validate_config(gate_string_t *config,
                                             exports_omk_gate_policy_rejection_t *err) {
  const uint8_t *s = config->ptr;
  size_t n = config->len;
  while (n && (*s == ' ' || *s == '\n')) s++, n--;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\n')) n--;
  if (n == 0 || (n == 2 && memcmp(s, "{}", 2) == 0)) return true;
  gate_string_dup(&err->code, "{{name}}.config-invalid");
  err->reason = concat("this gate takes no settings, but was given ", s, n, "");
  return false;
}

void exports_omk_gate_policy_describe(exports_omk_gate_policy_gate_info_t *ret) {
  gate_string_dup(&ret->name, "{{name}}");
  gate_string_dup(&ret->version, "0.1.0");
  gate_string_dup(&ret->description, "No task may read or write under secrets/");
  ret->stages.len = 2;
  ret->stages.ptr = malloc(2 * sizeof(exports_omk_gate_policy_stage_t));
  ret->stages.ptr[0] = EXPORTS_OMK_GATE_POLICY_STAGE_PROPOSAL;
  ret->stages.ptr[1] = EXPORTS_OMK_GATE_POLICY_STAGE_ACTION;
}

void exports_omk_gate_policy_check_proposal(exports_omk_gate_policy_goal_context_t *ctx,
                                            exports_omk_gate_policy_task_proposal_t *proposal,
                                            gate_string_t *config, decision_t *ret) {
  (void)ctx;
  (void)config;
  for (size_t i = 0; i < proposal->write_set.len; i++) {
    if (under_secrets(&proposal->write_set.ptr[i])) {
      reject(&proposal->write_set.ptr[i], ret);
      return;
    }
  }
  ret->tag = EXPORTS_OMK_GATE_POLICY_DECISION_ACCEPT;
}

void exports_omk_gate_policy_check_action(exports_omk_gate_policy_goal_context_t *ctx,
                                          exports_omk_gate_policy_task_proposal_t *task,
                                          exports_omk_gate_policy_agent_action_t *action,
                                          gate_string_t *config, action_decision_t *ret) {
  (void)ctx;
  (void)task;
  (void)config;
  const gate_string_t *hit = secret_in(action);
  if (hit) {
    ret->tag = EXPORTS_OMK_GATE_POLICY_ACTION_DECISION_REJECT;
    refusal(hit, &ret->val.reject);
    return;
  }
  ret->tag = EXPORTS_OMK_GATE_POLICY_ACTION_DECISION_ACCEPT;
}

void exports_omk_gate_policy_check_outcome(exports_omk_gate_policy_goal_context_t *ctx,
                                           exports_omk_gate_policy_task_proposal_t *task,
                                           exports_omk_gate_policy_task_outcome_t *outcome,
                                           gate_string_t *config, decision_t *ret) {
  (void)ctx;
  (void)task;
  (void)outcome;
  (void)config;
  ret->tag = EXPORTS_OMK_GATE_POLICY_DECISION_ACCEPT;
}
