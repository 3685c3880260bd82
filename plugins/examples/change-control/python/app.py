"""The `change-control` example gate, in Python — the same policy as
../rust/src/lib.rs, passing the same ../cases.toml and ../commands.toml.
Built with componentize-py against `omk:gate@0.3.0` (wit/gate.wit); it
imports WASI, so a project lists it with `wasi = true`.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.policy import (
    ActionDecision_Accept,
    ActionDecision_Ask,
    ActionDecision_Reject,
    ActionKind,
    Decision_Accept,
    Decision_Reject,
    GateInfo,
    Rejection,
    Stage,
)

MANIFESTS = {
    "Cargo.toml", "Cargo.lock", "package.json", "package-lock.json",
    "requirements.txt", "pyproject.toml", "go.mod", "go.sum",
}
CI_DIRS = {"ci", ".ci", ".circleci"}
CI_FILES = {"Jenkinsfile", ".gitlab-ci.yml", ".travis.yml"}


def reject(code, reason):
    return Decision_Reject(Rejection(code=f"change-control.{code}", reason=reason))


def clean(path):
    while path.startswith("./"):
        path = path[2:]
    return path


def basename(path):
    return path.rsplit("/", 1)[-1]


def is_migration(path):
    p = clean(path)
    return p == "migrations" or p.startswith("migrations/")


def is_manifest(path):
    return basename(path) in MANIFESTS


def is_ci(path):
    p = clean(path)
    return p.split("/", 1)[0] in CI_DIRS or basename(p) in CI_FILES


def validate_config(config):
    """The gate takes no settings: any but `{}` is refused at load."""
    c = config.strip()
    if c not in ("", "{}"):
        raise Err(
            Rejection(
                code="change-control.config-invalid",
                reason=f"this gate takes no settings, but was given {c}",
            )
        )


def first(paths, test):
    return next((p for p in paths if test(p)), None)


class Policy(exports.Policy):
    def describe(self):
        return GateInfo(
            name="change-control",
            version="0.3.0",
            stages=[Stage.PROPOSAL, Stage.ACTION],
            description="Migrations need high risk and their tests; dependencies and CI change apart",
        )

    def validate_config(self, config):
        validate_config(config)

    def check_proposal(self, ctx, p, config):
        m = first(p.write_set, is_migration)
        if m is not None:
            if p.risk != "high":
                return reject(
                    "migration-risk",
                    f"`{m}` changes a migration, which needs risk `high` (the task says `{p.risk}`)",
                )
            tested = any(a.lstrip().startswith("run:") and "migrat" in a for a in p.acceptance)
            if not tested:
                return reject(
                    "migration-tests",
                    "a task changing migrations needs an acceptance check that runs the migration tests (`run: …migrat…`)",
                )
        manifest = first(p.write_set, is_manifest)
        ci = first(p.write_set, is_ci)
        if manifest is not None and ci is not None:
            return reject(
                "deps-and-ci",
                f"a task may not change both dependencies (`{manifest}`) and CI configuration (`{ci}`)",
            )
        return Decision_Accept()

    def check_action(self, ctx, task, action, config):
        changes_file = action.kind in (ActionKind.WRITE_FILE, ActionKind.DELETE_FILE)
        if changes_file and is_migration(action.target) and task.risk != "high":
            return ActionDecision_Reject(
                Rejection(
                    code="change-control.migration-risk",
                    reason=f"`{action.target}` is a migration, and task `{task.id}` is not high-risk",
                )
            )
        # The commands the host parsed from the command line (none for
        # other actions); a name is known when word 0 is not dynamic.
        commands = action.command.commands if action.command is not None else []

        def name(c):
            return c.words[0] if c.words and 0 not in c.dynamic else None

        privileged = next((c for c in commands if name(c) in ("sudo", "doas")), None)
        if privileged is not None:
            return ActionDecision_Reject(
                Rejection(
                    code="change-control.privileged",
                    reason=f"`{' '.join(privileged.words)}` runs a command as another user, which change control does not allow",
                )
            )
        if any(name(c) == "git" and c.words[1:2] == ["push"] for c in commands):
            return ActionDecision_Ask(
                Rejection(
                    code="change-control.push",
                    reason="`git push` changes the shared history: a person approves each push",
                )
            )
        return ActionDecision_Accept()

    def check_outcome(self, ctx, task, outcome, config):
        return Decision_Accept()
