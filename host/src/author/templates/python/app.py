"""The gate `{{name}}`. `omk gate build` turns it into a component with
componentize-py. Python components import WASI; omk links a sealed WASI
for them (no files, no network, no environment, a frozen clock).
"""

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
            reason=f"`{path}` is under `{SECRETS}/`, which no task may change",
        )
    )


class Policy(exports.Policy):
    def describe(self) -> GateInfo:
        return GateInfo(
            name="{{name}}",
            version="0.1.0",
            stages=[Stage.PROPOSAL, Stage.ACTION],
            description="No task may write under secrets/",
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
