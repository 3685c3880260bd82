//! The peer engine: the same rules in Rego (`policy.rego`), with the same
//! codes, evaluated by regorus's interpreter, input built from the same
//! proposals. (regorus 0.14's faster RVM returns nothing for rules written
//! with `else`, which first-match rules like the gates' need.)

use omk_gate_sdk::{GoalContext, TaskProposal};
use regorus::{Engine, Value};

const POLICY: &str = include_str!("policy.rego");
const ENTRY: &str = "data.omk.verdict";

pub struct Rego {
    engine: Engine,
}

impl Rego {
    pub fn new() -> Rego {
        let mut engine = Engine::new();
        engine
            .add_policy("policy.rego".into(), POLICY.into())
            .expect("the policy parses");
        Rego { engine }
    }

    /// The codes with which budget, path and acceptance reject (`""`: it
    /// accepts).
    pub fn eval(&mut self, ctx: &GoalContext, p: &TaskProposal) -> [String; 3] {
        let input = serde_json::json!({
            "proposal": p,
            "budget": ctx.budget,
            "roots": ctx.policy_roots,
            "accepted": ctx.accepted_in_wave,
        });
        self.engine.set_input(Value::from(input));
        let out = self
            .engine
            .eval_rule(ENTRY.into())
            .expect("the policy evaluates");
        let code = |i: usize| {
            out[i]
                .as_string()
                .map(|s| s.as_ref().to_owned())
                .unwrap_or_else(|_| format!("not a code: {}", out[i]))
        };
        [code(0), code(1), code(2)]
    }
}
