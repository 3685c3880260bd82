// The gate `{{name}}`. `omk gate build` turns it into a component with
// componentize-js (WASI features disabled: a gate gets no capabilities).
// Records arrive as objects with camelCase fields; u64 fields are BigInts.
// It implements `omk:gate@0.3.0` (wit/gate.wit): omk calls validateConfig
// once at load, then the checks of the stages describe lists. An action's
// `command` is what omk parsed from a command line (its simple commands,
// their words after quote removal, their redirections); its `tool` is a
// tool call (server, tool, arguments as JSON). Either is undefined when
// the action has none.

const SECRETS = "secrets";

function underSecrets(path) {
  const p = path.replace(/^(\.\/)+/, "");
  return p === SECRETS || p.startsWith(SECRETS + "/");
}

function reject(path) {
  return {
    tag: "reject",
    val: {
      code: "{{name}}.secrets",
      reason: `\`${path}\` is under \`${SECRETS}/\`, which no task may read or change`,
    },
  };
}

// A path under secrets/ the action names: its target, a word or a
// redirection of a command it runs, or (for a tool call) its arguments.
function secretIn(action) {
  if (underSecrets(action.target)) return action.target;
  const commands = action.command ? action.command.commands : [];
  for (const c of commands) {
    const named = c.words.concat(c.redirections.map((r) => r.target));
    const hit = named.find(underSecrets);
    if (hit !== undefined) return hit;
  }
  if (action.tool) {
    try {
      const args = JSON.parse(action.tool.arguments);
      const hit = Object.values(args).find((v) => typeof v === "string" && underSecrets(v));
      if (hit !== undefined) return hit;
    } catch (e) {
      return `${action.tool.server}/${action.tool.tool} (arguments that are not JSON)`;
    }
  }
  return undefined;
}

export const policy = {
  describe() {
    return {
      name: "{{name}}",
      version: "0.1.0",
      stages: ["proposal", "action"],
      description: "No task may read or write under secrets/",
    };
  },
  // This gate takes no settings: any but `{}` stops its load. A
  // `result<_, rejection>` is ok when this returns, err when it throws the
  // rejection.
  validateConfig(config) {
    const c = config.trim();
    if (c !== "" && c !== "{}") {
      throw { code: "{{name}}.config-invalid", reason: `this gate takes no settings, but was given ${c}` };
    }
  },
  checkProposal(ctx, proposal, config) {
    const hit = proposal.writeSet.find(underSecrets);
    return hit === undefined ? { tag: "accept" } : reject(hit);
  },
  checkAction(ctx, task, action, config) {
    const hit = secretIn(action);
    return hit === undefined ? { tag: "accept" } : reject(hit);
  },
  checkOutcome(ctx, task, outcome, config) {
    return { tag: "accept" };
  },
};
