// The gate `{{name}}`. `omk gate build` turns it into a component with
// componentize-js (WASI features disabled: a gate gets no capabilities).
// Records arrive as objects with camelCase fields; u64 fields are BigInts.
// It implements `omk:gate@0.2.0` (wit/gate.wit): omk calls validateConfig
// once at load, then the checks of the stages describe lists.

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
    return underSecrets(action.target) ? reject(action.target) : { tag: "accept" };
  },
  checkOutcome(ctx, task, outcome, config) {
    return { tag: "accept" };
  },
};
