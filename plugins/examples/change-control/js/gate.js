// The `change-control` example gate, in JavaScript — the same policy as
// ../rust/src/lib.rs, passing the same ../cases.toml and ../commands.toml.
// Built against `omk:gate@0.3.0` (wit/gate.wit).

const MANIFESTS = new Set([
  "Cargo.toml", "Cargo.lock", "package.json", "package-lock.json",
  "requirements.txt", "pyproject.toml", "go.mod", "go.sum",
]);
const CI_DIRS = new Set(["ci", ".ci", ".circleci"]);
const CI_FILES = new Set(["Jenkinsfile", ".gitlab-ci.yml", ".travis.yml"]);
const ACCEPT = { tag: "accept" };

function reject(code, reason) {
  return { tag: "reject", val: { code: `change-control.${code}`, reason } };
}

const clean = (p) => p.replace(/^(\.\/)+/, "");
const basename = (p) => p.slice(p.lastIndexOf("/") + 1);
const isMigration = (p) => {
  const c = clean(p);
  return c === "migrations" || c.startsWith("migrations/");
};
const isManifest = (p) => MANIFESTS.has(basename(p));
const isCi = (p) => {
  const c = clean(p);
  return CI_DIRS.has(c.split("/")[0]) || CI_FILES.has(basename(c));
};

// A `result<_, rejection>` is returned by returning (ok) or by throwing
// the rejection itself (err).
function validateConfig(config) {
  const c = config.trim();
  if (c !== "" && c !== "{}") {
    throw {
      code: "change-control.config-invalid",
      reason: `this gate takes no settings, but was given ${c}`,
    };
  }
}

export const policy = {
  describe() {
    return {
      name: "change-control",
      version: "0.3.0",
      stages: ["proposal", "action"],
      description: "Migrations need high risk and their tests; dependencies and CI change apart",
    };
  },
  validateConfig,
  checkProposal(ctx, p, config) {
    const m = p.writeSet.find(isMigration);
    if (m !== undefined) {
      if (p.risk !== "high") {
        return reject("migration-risk",
          `\`${m}\` changes a migration, which needs risk \`high\` (the task says \`${p.risk}\`)`);
      }
      const tested = p.acceptance.some((a) => a.trimStart().startsWith("run:") && a.includes("migrat"));
      if (!tested) {
        return reject("migration-tests",
          "a task changing migrations needs an acceptance check that runs the migration tests (`run: …migrat…`)");
      }
    }
    const manifest = p.writeSet.find(isManifest);
    const ci = p.writeSet.find(isCi);
    if (manifest !== undefined && ci !== undefined) {
      return reject("deps-and-ci",
        `a task may not change both dependencies (\`${manifest}\`) and CI configuration (\`${ci}\`)`);
    }
    return ACCEPT;
  },
  checkAction(ctx, task, action, config) {
    const changesFile = action.kind === "write-file" || action.kind === "delete-file";
    if (changesFile && isMigration(action.target) && task.risk !== "high") {
      return reject("migration-risk",
        `\`${action.target}\` is a migration, and task \`${task.id}\` is not high-risk`);
    }
    // The commands the host parsed from the command line (none for other
    // actions); a name is known when word 0 is not dynamic.
    const commands = action.command ? action.command.commands : [];
    const name = (c) => (c.words.length > 0 && !Array.from(c.dynamic).includes(0) ? c.words[0] : undefined);
    const privileged = commands.find((c) => name(c) === "sudo" || name(c) === "doas");
    if (privileged !== undefined) {
      return reject("privileged",
        `\`${privileged.words.join(" ")}\` runs a command as another user, which change control does not allow`);
    }
    if (commands.some((c) => name(c) === "git" && c.words[1] === "push")) {
      return {
        tag: "ask",
        val: {
          code: "change-control.push",
          reason: "`git push` changes the shared history: a person approves each push",
        },
      };
    }
    return ACCEPT;
  },
  checkOutcome(ctx, task, outcome, config) {
    return ACCEPT;
  },
};
