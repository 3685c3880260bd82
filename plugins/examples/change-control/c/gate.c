// The `change-control` example gate, in C — the same policy as
// ../rust/src/lib.rs, passing the same ../cases.toml and ../commands.toml.
// `omk gate build` generates gen/gate.h from wit/ (`omk:gate@0.3.0`) and
// compiles this with clang against wasi-libc; no stdio, so the component
// imports nothing.
#include <stdlib.h>
#include <string.h>

#include "gate.h"

typedef exports_omk_gate_policy_decision_t decision_t;
typedef exports_omk_gate_policy_action_decision_t action_decision_t;
typedef exports_omk_gate_policy_task_proposal_t task_t;
typedef exports_omk_gate_policy_simple_command_t command_t;

// A view of bytes: the gate's strings are not NUL-terminated.
typedef struct {
  const uint8_t *p;
  size_t n;
} view_t;

static view_t view(const gate_string_t *s) { return (view_t){s->ptr, s->len}; }

static int eq(view_t v, const char *c) {
  size_t n = strlen(c);
  return v.n == n && memcmp(v.p, c, n) == 0;
}

static int starts(view_t v, const char *c) {
  size_t n = strlen(c);
  return v.n >= n && memcmp(v.p, c, n) == 0;
}

static int contains(view_t v, const char *c) {
  size_t n = strlen(c);
  for (size_t i = 0; n <= v.n && i <= v.n - n; i++)
    if (memcmp(v.p + i, c, n) == 0) return 1;
  return 0;
}

static int any_of(view_t v, const char *const *set) {
  for (; *set; set++)
    if (eq(v, *set)) return 1;
  return 0;
}

static view_t clean(view_t v) {
  while (starts(v, "./")) v = (view_t){v.p + 2, v.n - 2};
  return v;
}

static view_t basename_of(view_t v) {
  size_t i = v.n;
  while (i > 0 && v.p[i - 1] != '/') i--;
  return (view_t){v.p + i, v.n - i};
}

static view_t first_part(view_t v) {
  size_t i = 0;
  while (i < v.n && v.p[i] != '/') i++;
  return (view_t){v.p, i};
}

static const char *const MANIFESTS[] = {"Cargo.toml", "Cargo.lock", "package.json",
                                        "package-lock.json", "requirements.txt",
                                        "pyproject.toml", "go.mod", "go.sum", 0};
static const char *const CI_DIRS[] = {"ci", ".ci", ".circleci", 0};
static const char *const CI_FILES[] = {"Jenkinsfile", ".gitlab-ci.yml", ".travis.yml", 0};

static int is_migration(view_t v) {
  v = clean(v);
  return eq(v, "migrations") || starts(v, "migrations/");
}
static int is_manifest(view_t v) { return any_of(basename_of(v), MANIFESTS); }
static int is_ci(view_t v) {
  v = clean(v);
  return any_of(first_part(v), CI_DIRS) || any_of(basename_of(v), CI_FILES);
}

// A growing malloc'd string (omk frees what a gate returns).
typedef struct {
  uint8_t *p;
  size_t n;
} buf_t;

static void put(buf_t *b, const uint8_t *s, size_t n) {
  uint8_t *p = realloc(b->p, b->n + n + 1);
  if (!p) abort();
  memcpy(p + b->n, s, n);
  b->p = p;
  b->n += n;
}
static void puts_c(buf_t *b, const char *s) { put(b, (const uint8_t *)s, strlen(s)); }
static void puts_v(buf_t *b, view_t v) { put(b, v.p, v.n); }

static void reject(decision_t *ret, const char *code, buf_t reason) {
  ret->tag = EXPORTS_OMK_GATE_POLICY_DECISION_REJECT;
  gate_string_dup(&ret->val.reject.code, code);
  ret->val.reject.reason = (gate_string_t){reason.p, reason.n};
}

// Called once at load: the gate takes no settings, so any config but an
// empty one or `{}` is refused (false, with the rejection in `err`).
bool exports_omk_gate_policy_validate_config(gate_string_t *config,
                                             exports_omk_gate_policy_rejection_t *err) {
  view_t c = view(config);
  while (c.n && (*c.p == ' ' || *c.p == '\n' || *c.p == '\t')) c = (view_t){c.p + 1, c.n - 1};
  while (c.n && (c.p[c.n - 1] == ' ' || c.p[c.n - 1] == '\n' || c.p[c.n - 1] == '\t')) c.n--;
  if (c.n == 0 || eq(c, "{}")) return true;
  buf_t r = {0, 0};
  puts_c(&r, "this gate takes no settings, but was given ");
  puts_v(&r, c);
  gate_string_dup(&err->code, "change-control.config-invalid");
  err->reason = (gate_string_t){r.p, r.n};
  return false;
}

static const gate_string_t *find(const gate_list_string_t *l, int (*test)(view_t)) {
  for (size_t i = 0; i < l->len; i++)
    if (test(view(&l->ptr[i]))) return &l->ptr[i];
  return 0;
}

void exports_omk_gate_policy_describe(exports_omk_gate_policy_gate_info_t *ret) {
  gate_string_dup(&ret->name, "change-control");
  gate_string_dup(&ret->version, "0.3.0");
  gate_string_dup(&ret->description,
                  "Migrations need high risk and their tests; dependencies and CI change apart");
  ret->stages.len = 2;
  ret->stages.ptr = malloc(2 * sizeof(exports_omk_gate_policy_stage_t));
  ret->stages.ptr[0] = EXPORTS_OMK_GATE_POLICY_STAGE_PROPOSAL;
  ret->stages.ptr[1] = EXPORTS_OMK_GATE_POLICY_STAGE_ACTION;
}

void exports_omk_gate_policy_check_proposal(exports_omk_gate_policy_goal_context_t *ctx, task_t *p,
                                            gate_string_t *config, decision_t *ret) {
  (void)ctx;
  (void)config;
  const gate_string_t *m = find(&p->write_set, is_migration);
  if (m) {
    if (!eq(view(&p->risk), "high")) {
      buf_t r = {0, 0};
      puts_c(&r, "`");
      puts_v(&r, view(m));
      puts_c(&r, "` changes a migration, which needs risk `high` (the task says `");
      puts_v(&r, view(&p->risk));
      puts_c(&r, "`)");
      reject(ret, "change-control.migration-risk", r);
      return;
    }
    int tested = 0;
    for (size_t i = 0; i < p->acceptance.len; i++) {
      view_t a = view(&p->acceptance.ptr[i]);
      while (a.n && (*a.p == ' ' || *a.p == '\t')) a = (view_t){a.p + 1, a.n - 1};
      if (starts(a, "run:") && contains(a, "migrat")) tested = 1;
    }
    if (!tested) {
      buf_t r = {0, 0};
      puts_c(&r, "a task changing migrations needs an acceptance check that runs the migration "
                 "tests (`run: \xe2\x80\xa6migrat\xe2\x80\xa6`)");
      reject(ret, "change-control.migration-tests", r);
      return;
    }
  }
  const gate_string_t *manifest = find(&p->write_set, is_manifest);
  const gate_string_t *ci = find(&p->write_set, is_ci);
  if (manifest && ci) {
    buf_t r = {0, 0};
    puts_c(&r, "a task may not change both dependencies (`");
    puts_v(&r, view(manifest));
    puts_c(&r, "`) and CI configuration (`");
    puts_v(&r, view(ci));
    puts_c(&r, "`)");
    reject(ret, "change-control.deps-and-ci", r);
    return;
  }
  ret->tag = EXPORTS_OMK_GATE_POLICY_DECISION_ACCEPT;
}

// A command's name, where it is known (word 0, not dynamic); empty if not.
static view_t name_of(const command_t *c) {
  if (c->words.len == 0) return (view_t){0, 0};
  for (size_t i = 0; i < c->dynamic.len; i++)
    if (c->dynamic.ptr[i] == 0) return (view_t){0, 0};
  return view(&c->words.ptr[0]);
}

static void action_reject(action_decision_t *ret, uint8_t tag, const char *code, buf_t reason) {
  ret->tag = tag;
  exports_omk_gate_policy_rejection_t *r =
      tag == EXPORTS_OMK_GATE_POLICY_ACTION_DECISION_ASK ? &ret->val.ask : &ret->val.reject;
  gate_string_dup(&r->code, code);
  r->reason = (gate_string_t){reason.p, reason.n};
}

void exports_omk_gate_policy_check_action(exports_omk_gate_policy_goal_context_t *ctx, task_t *task,
                                          exports_omk_gate_policy_agent_action_t *action,
                                          gate_string_t *config, action_decision_t *ret) {
  (void)ctx;
  (void)config;
  int changes_file = action->kind == EXPORTS_OMK_GATE_POLICY_ACTION_KIND_WRITE_FILE ||
                     action->kind == EXPORTS_OMK_GATE_POLICY_ACTION_KIND_DELETE_FILE;
  if (changes_file && is_migration(view(&action->target)) && !eq(view(&task->risk), "high")) {
    buf_t r = {0, 0};
    puts_c(&r, "`");
    puts_v(&r, view(&action->target));
    puts_c(&r, "` is a migration, and task `");
    puts_v(&r, view(&task->id));
    puts_c(&r, "` is not high-risk");
    action_reject(ret, EXPORTS_OMK_GATE_POLICY_ACTION_DECISION_REJECT,
                  "change-control.migration-risk", r);
    return;
  }
  // The commands the host parsed from the command line (none for other
  // actions).
  size_t n = action->command.is_some ? action->command.val.commands.len : 0;
  const command_t *commands = n ? action->command.val.commands.ptr : 0;
  for (size_t i = 0; i < n; i++) {
    view_t name = name_of(&commands[i]);
    if (eq(name, "sudo") || eq(name, "doas")) {
      buf_t r = {0, 0};
      puts_c(&r, "`");
      for (size_t w = 0; w < commands[i].words.len; w++) {
        if (w) puts_c(&r, " ");
        puts_v(&r, view(&commands[i].words.ptr[w]));
      }
      puts_c(&r, "` runs a command as another user, which change control does not allow");
      action_reject(ret, EXPORTS_OMK_GATE_POLICY_ACTION_DECISION_REJECT,
                    "change-control.privileged", r);
      return;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (eq(name_of(&commands[i]), "git") && commands[i].words.len > 1 &&
        eq(view(&commands[i].words.ptr[1]), "push")) {
      buf_t r = {0, 0};
      puts_c(&r, "`git push` changes the shared history: a person approves each push");
      action_reject(ret, EXPORTS_OMK_GATE_POLICY_ACTION_DECISION_ASK, "change-control.push", r);
      return;
    }
  }
  ret->tag = EXPORTS_OMK_GATE_POLICY_ACTION_DECISION_ACCEPT;
}

void exports_omk_gate_policy_check_outcome(exports_omk_gate_policy_goal_context_t *ctx,
                                           task_t *task,
                                           exports_omk_gate_policy_task_outcome_t *outcome,
                                           gate_string_t *config, decision_t *ret) {
  (void)ctx;
  (void)task;
  (void)outcome;
  (void)config;
  ret->tag = EXPORTS_OMK_GATE_POLICY_DECISION_ACCEPT;
}
