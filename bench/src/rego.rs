//! The peer engine: the same rules in Rego (`policy.rego`), with the same
//! codes, input built from the same proposals, evaluated by regorus in
//! both of its modes: its RVM (the policy compiled to a program for its
//! virtual machine, regorus's fastest) and its tree-walking interpreter.
//! The policy is written without `else` so that the RVM runs it.

use omk_gate_sdk::{GoalContext, TaskProposal};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::RegoVM;
use regorus::{Engine, Value};

const POLICY: &str = include_str!("policy.rego");
const ENTRY: &str = "data.omk.verdict";

/// How regorus evaluates the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The compiled program on regorus's VM.
    Rvm,
    /// The interpreter over the parsed policy.
    Interpreter,
}

pub struct Rego {
    engine: Engine,
    vm: Option<RegoVM>,
}

impl Rego {
    pub fn new(mode: Mode) -> Rego {
        let mut engine = Engine::new();
        engine
            .add_policy("policy.rego".into(), POLICY.into())
            .expect("the policy parses");
        let vm = (mode == Mode::Rvm).then(|| {
            let compiled = engine
                .compile_with_entrypoint(&ENTRY.into())
                .expect("the policy compiles");
            let program =
                Compiler::compile_from_policy(&compiled, &[ENTRY]).expect("the RVM compiles it");
            let mut vm = RegoVM::new();
            vm.load_program(program);
            vm
        });
        Rego { engine, vm }
    }

    /// The codes with which budget, path and acceptance reject (`""`: it
    /// accepts).
    pub fn eval(&mut self, ctx: &GoalContext, p: &TaskProposal) -> [String; 3] {
        let input = Value::from(serde_json::json!({
            "proposal": p,
            "budget": ctx.budget,
            "roots": ctx.policy_roots,
            "accepted": ctx.accepted_in_wave,
        }));
        let out = match &mut self.vm {
            Some(vm) => {
                vm.set_input(input);
                vm.execute().expect("the program runs")
            }
            None => {
                self.engine.set_input(input);
                self.engine
                    .eval_rule(ENTRY.into())
                    .expect("the policy evaluates")
            }
        };
        let code = |i: usize| {
            out[i]
                .as_string()
                .map(|s| s.as_ref().to_owned())
                .unwrap_or_else(|_| format!("not a code: {}", out[i]))
        };
        [code(0), code(1), code(2)]
    }
}
