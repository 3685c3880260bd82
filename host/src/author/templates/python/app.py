"""The gate `{{name}}`. `omk gate build` turns it into a component with
componentize-py. Python components import WASI; omk links a sealed WASI
for them (no files, no network, no environment, a frozen clock). It
implements `omk:gate@0.3.0` (wit/gate.wit): omk calls validate_config once
at load, then the checks of the stages describe lists. An action's
`command` is what omk parsed from a command line (its simple commands,
their words after quote removal, their redirections); its `tool` is a tool
call (server, tool, arguments as JSON). Either is None when it has none.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.policy import (
    ActionDecision_Accept,
    ActionDecision_Reject,
    Decision_Accept,
    Decision_Reject,
    GateInfo,
    Rejection,
    Stage,
)

SECRETS = "secrets"


def under_secrets(path: str) -> bool:
    while path.startswith("./"):
        path = path[2:]
    return path == SECRETS or path.startswith(SECRETS + "/")


def refusal(path: str) -> Rejection:
    return Rejection(
        code="{{name}}.secrets",
        reason=f"`{path}` is under `{SECRETS}/`, which no task may read or change",
    )


def reject(path: str):
    return Decision_Reject(refusal(path))


def secret_in(action):
    """A path under secrets/ the action names: its target, a word or a
    redirection of a command it runs, or (for a tool call) its arguments."""
    if under_secrets(action.target):
        return action.target
    commands = action.command.commands if action.command is not None else []
    for c in commands:
        for word in list(c.words) + [r.target for r in c.redirections]:
            if under_secrets(word):
                return word
    if action.tool is not None:
        try:
            args = json.loads(action.tool.arguments)
        except ValueError:
            return f"{action.tool.server}/{action.tool.tool} (arguments that are not JSON)"
        for value in args.values() if isinstance(args, dict) else []:
            if isinstance(value, str) and under_secrets(value):
                return value
    return None


class Policy(exports.Policy):
    def describe(self) -> GateInfo:
        return GateInfo(
            name="{{name}}",
            version="0.1.0",
            stages=[Stage.PROPOSAL, Stage.ACTION],
            description="No task may read or write under secrets/",
        )

    def validate_config(self, config: str) -> None:
        """This gate takes no settings: any but `{}` stops its load."""
        c = config.strip()
        if c not in ("", "{}"):
            raise Err(
                Rejection(
                    code="{{name}}.config-invalid",
                    reason=f"this gate takes no settings, but was given {c}",
                )
            )

    def check_proposal(self, ctx, proposal, config):
        for path in proposal.write_set:
            if under_secrets(path):
                return reject(path)
        return Decision_Accept()

    def check_action(self, ctx, task, action, config):
        hit = secret_in(action)
        if hit is not None:
            return ActionDecision_Reject(refusal(hit))
        return ActionDecision_Accept()

    def check_outcome(self, ctx, task, outcome, config):
        return Decision_Accept()
