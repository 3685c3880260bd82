"""The gate `{{name}}`. `omk gate build` turns it into a component with
componentize-py. Python components import WASI; omk links a sealed WASI
for them (no files, no network, no environment, a frozen clock). It
implements `omk:gate@0.2.0` (wit/gate.wit): omk calls validate_config once
at load, then the checks of the stages describe lists.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.policy import (
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


def reject(path: str):
    return Decision_Reject(
        Rejection(
            code="{{name}}.secrets",
            reason=f"`{path}` is under `{SECRETS}/`, which no task may read or change",
        )
    )


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
        if under_secrets(action.target):
            return reject(action.target)
        return Decision_Accept()

    def check_outcome(self, ctx, task, outcome, config):
        return Decision_Accept()
