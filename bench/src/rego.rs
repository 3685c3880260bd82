//! The peer engine: the same rules in Rego, evaluated by regorus's RVM
//! (its fastest mode), input built from the same proposals.

use std::sync::Arc;

use omk_gate_sdk::{GoalContext, TaskProposal};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::RegoVM;
use regorus::{Engine, Value};

const POLICY: &str = include_str!("policy.rego");
const ENTRY: &str = "data.omk.verdict";

pub struct Rego {
    program: Arc<regorus::rvm::program::Program>,
}

impl Rego {
    pub fn new() -> Rego {
        let mut engine = Engine::new();
        engine
            .add_policy("policy.rego".into(), POLICY.into())
            .expect("the policy parses");
        let compiled = engine
            .compile_with_entrypoint(&ENTRY.into())
            .expect("the policy compiles");
        let program =
            Compiler::compile_from_policy(&compiled, &[ENTRY]).expect("the RVM program compiles");
        Rego { program }
    }

    /// Which of budget, path and acceptance reject.
    pub fn eval(&self, ctx: &GoalContext, p: &TaskProposal) -> [bool; 3] {
        let input = serde_json::json!({
            "proposal": p,
            "budget": ctx.budget,
            "roots": ctx.policy_roots,
            "accepted": ctx.accepted_in_wave,
        });
        let mut vm = RegoVM::new();
        vm.load_program(self.program.clone());
        vm.set_input(Value::from(input));
        let out = vm.execute().expect("the policy evaluates");
        let b = |i: usize| out[i] == Value::from(true);
        [b(0), b(1), b(2)]
    }
}
