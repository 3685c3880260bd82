//! Host bindings for each supported version of the `omk:gate` WIT package,
//! and conversions between them and the SDK's plain types.
//!
//! The host works with [`omk_gate_sdk`] types only; they follow the newest
//! version. Each supported version has a module here generated from its
//! frozen file under `wit/`, converting the host's types into its own; an
//! older version's module is the adapter that serves its gates (the way
//! Zed's extension host serves old extension APIs). [`Pre`] and
//! [`Instance`] pick the module by the version the component exports, read
//! before it is instantiated.

use omk_gate_sdk::{
    AcceptedTask, ActionKind, AgentAction, Decision, GateInfo, GoalContext, Lazy, Rejection,
    TaskOutcome, TaskProposal,
};
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

pub mod v0_1_0;
pub mod v0_2_0;
pub mod v0_3_0;

/// The WIT versions this host loads, newest first.
pub const SUPPORTED: &[&str] = omk_core::SUPPORTED_WIT_VERSIONS;

/// The interface a gate exports, without its version.
pub const INTERFACE: &str = "omk:gate/policy";

/// The interface the host implements for gates from 0.2 on, without its
/// version.
pub const CONTEXT: &str = "omk:gate/context";

/// The functions of `omk:gate/policy` at `version`.
pub fn functions(version: &str) -> &'static [&'static str] {
    if minor(version) == minor("0.1.0") {
        &[
            "describe",
            "check-proposal",
            "check-action",
            "check-outcome",
        ]
    } else {
        &[
            "describe",
            "validate-config",
            "check-proposal",
            "check-action",
            "check-outcome",
        ]
    }
}

/// Whether the host provides the import `name` to a gate of `version`:
/// `omk:gate/context` of the same version, from 0.2 on.
pub fn provides(name: &str, version: &str) -> bool {
    name.strip_prefix(CONTEXT)
        .and_then(|v| v.strip_prefix('@'))
        .is_some_and(|v| minor(v) == minor(version) && minor(v) != minor("0.1.0"))
}

/// How an action's target reads for a gate from before 0.3.0: a tool call
/// (`other` there) is its name and its arguments, clipped, as omk described
/// tool calls to those gates.
pub fn legacy_target(a: &omk_gate_sdk::AgentAction) -> String {
    match (&a.kind, &a.tool) {
        (ActionKind::CallTool, Some(t)) => {
            format!("{} {}", a.target, crate::text::clip(&t.arguments, 300))
        }
        _ => a.target.clone(),
    }
}

/// Major and minor of a semver version: the compatibility unit of a `0.x`
/// WIT package.
pub fn minor(v: &str) -> (Option<&str>, Option<&str>) {
    let mut parts = v.split(['.', '-', '+']);
    (parts.next(), parts.next())
}

/// The conversions of the types no version has changed yet, generated into
/// each version's module (its `wit` and `sdk` in scope).
macro_rules! unchanged_types {
    () => {
        pub fn info(i: wit::GateInfo) -> sdk::GateInfo {
            sdk::GateInfo {
                name: i.name,
                version: i.version,
                stages: i
                    .stages
                    .into_iter()
                    .map(|s| match s {
                        wit::Stage::Proposal => sdk::Stage::Proposal,
                        wit::Stage::Action => sdk::Stage::Action,
                        wit::Stage::Outcome => sdk::Stage::Outcome,
                    })
                    .collect(),
                description: i.description,
            }
        }

        pub fn decision(d: wit::Decision) -> sdk::Decision {
            match d {
                wit::Decision::Accept => sdk::Decision::Accept,
                wit::Decision::Reject(r) => sdk::Decision::reject(r.code, r.reason),
            }
        }

        pub fn proposal(p: &sdk::TaskProposal) -> wit::TaskProposal {
            wit::TaskProposal {
                id: p.id.clone(),
                title: p.title.clone(),
                description: p.description.clone(),
                dependencies: p.dependencies.clone(),
                read_set: p.read_set.clone(),
                write_set: p.write_set.clone(),
                risk: p.risk.clone(),
                acceptance: p.acceptance.clone(),
                budget_secs: p.budget_secs,
                priority: p.priority,
            }
        }

        pub fn outcome(o: &sdk::TaskOutcome) -> wit::TaskOutcome {
            wit::TaskOutcome {
                task_id: o.task_id.clone(),
                changed_files: o.changed_files.clone(),
                evidence: o
                    .evidence
                    .iter()
                    .map(|e| wit::Evidence {
                        kind: e.kind.clone(),
                        summary: e.summary.clone(),
                        path: e.path.clone(),
                        criterion: e.criterion.clone(),
                    })
                    .collect(),
                checks: o
                    .checks
                    .iter()
                    .map(|c| wit::CheckResult {
                        name: c.name.clone(),
                        command: c.command.clone(),
                        exit_code: c.exit_code,
                        passed: c.passed,
                        output_tail: c.output_tail.clone(),
                    })
                    .collect(),
            }
        }

        pub fn budget(b: &sdk::Budget) -> wit::Budget {
            wit::Budget {
                time_limit_secs: b.time_limit_secs,
                time_spent_secs: b.time_spent_secs,
                time_committed_secs: b.time_committed_secs,
                token_limit: b.token_limit,
                tokens_spent: b.tokens_spent,
                usd_limit_micros: b.usd_limit_micros,
                usd_spent_micros: b.usd_spent_micros,
            }
        }
    };
}
use unchanged_types;

/// The host's side of the `context` interface, the context every decision
/// carries and a rejection's conversion, the same from 0.2 on: generated
/// into each such version's module (its `wit` and `sdk` in scope).
macro_rules! on_demand_context {
    () => {
        use self::omk::gate::context as host;
        use super::OnDemand;

        impl host::Host for OnDemand {
            fn goal_text(&mut self) -> String {
                self.goal_text.to_string()
            }

            fn accepted_in_wave(&mut self) -> Vec<host::AcceptedTask> {
                self.accepted_in_wave
                    .iter()
                    .map(|t| host::AcceptedTask {
                        id: t.id.clone(),
                        read_set: t.read_set.clone(),
                        write_set: t.write_set.clone(),
                        dependencies: t.dependencies.clone(),
                    })
                    .collect()
            }

            fn existing_task_ids(&mut self) -> Vec<String> {
                self.existing_task_ids.to_vec()
            }
        }

        /// The context every decision carries; the rest is asked of [`OnDemand`].
        pub fn context(c: &sdk::GoalContext) -> wit::GoalContext {
            wit::GoalContext {
                goal_id: c.goal_id.clone(),
                phase: c.phase.clone(),
                now_ms: c.now_ms,
                budget: budget(&c.budget),
                policy_roots: c.policy_roots.clone(),
            }
        }

        pub fn rejection(r: wit::Rejection) -> sdk::Rejection {
            sdk::Rejection {
                code: r.code,
                reason: r.reason,
            }
        }
    };
}
use on_demand_context;

/// What a gate from 0.2 on can ask of the host during one decision: the context's
/// on-demand parts, shared with the decision's inputs (which are what omk
/// records, so replay answers the same). Empty outside a decision.
#[derive(Debug, Clone, Default)]
pub struct OnDemand {
    goal_text: Lazy<String>,
    accepted_in_wave: Lazy<Vec<AcceptedTask>>,
    existing_task_ids: Lazy<Vec<String>>,
}

impl OnDemand {
    /// The on-demand parts of `ctx` (shared, not copied).
    pub fn of(ctx: &GoalContext) -> OnDemand {
        OnDemand {
            goal_text: ctx.goal_text.clone(),
            accepted_in_wave: ctx.accepted_in_wave.clone(),
            existing_task_ids: ctx.existing_task_ids.clone(),
        }
    }
}

/// A component's bindings, checked against its version once at load.
pub enum Pre<T: 'static> {
    V0_1(v0_1_0::GatePre<T>),
    V0_2(v0_2_0::GatePre<T>),
    V0_3(v0_3_0::GatePre<T>),
}

impl<T: 'static> Pre<T> {
    /// Adds what the host implements for gates of `version` to `linker`;
    /// `on_demand` finds a store's [`OnDemand`].
    pub fn link(
        version: &str,
        linker: &mut Linker<T>,
        on_demand: fn(&mut T) -> &mut OnDemand,
    ) -> wasmtime::Result<()> {
        if minor(version) == minor("0.1.0") {
            Ok(())
        } else if minor(version) == minor("0.2.0") {
            v0_2_0::Gate::add_to_linker::<T, HasSelf<OnDemand>>(linker, on_demand)
        } else {
            v0_3_0::Gate::add_to_linker::<T, HasSelf<OnDemand>>(linker, on_demand)
        }
    }

    /// The bindings of `pre` for a component that exports `version`.
    pub fn new(version: &str, pre: InstancePre<T>) -> wasmtime::Result<Pre<T>> {
        Ok(if minor(version) == minor("0.1.0") {
            Pre::V0_1(v0_1_0::GatePre::new(pre)?)
        } else if minor(version) == minor("0.2.0") {
            Pre::V0_2(v0_2_0::GatePre::new(pre)?)
        } else {
            Pre::V0_3(v0_3_0::GatePre::new(pre)?)
        })
    }

    /// Whether a gate of this version is asked about actions of `kind`:
    /// every kind from 0.2 on; a 0.1 gate not about reads.
    pub fn asks(&self, kind: ActionKind) -> bool {
        match self {
            Pre::V0_1(_) => kind != ActionKind::ReadFile,
            Pre::V0_2(_) | Pre::V0_3(_) => true,
        }
    }

    /// A new instance in `store`.
    pub fn instantiate(&self, store: &mut Store<T>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V0_1(p) => Instance::V0_1(p.instantiate(store)?),
            Pre::V0_2(p) => Instance::V0_2(p.instantiate(store)?),
            Pre::V0_3(p) => Instance::V0_3(p.instantiate(store)?),
        })
    }
}

/// One instance of a gate, of whichever version; every call takes and
/// gives the host's types.
pub enum Instance {
    V0_1(v0_1_0::Gate),
    V0_2(v0_2_0::Gate),
    V0_3(v0_3_0::Gate),
}

impl Instance {
    pub fn describe<T>(&self, store: &mut Store<T>) -> wasmtime::Result<GateInfo> {
        Ok(match self {
            Instance::V0_1(g) => v0_1_0::info(g.omk_gate_policy().call_describe(store)?),
            Instance::V0_2(g) => v0_2_0::info(g.omk_gate_policy().call_describe(store)?),
            Instance::V0_3(g) => v0_3_0::info(g.omk_gate_policy().call_describe(store)?),
        })
    }

    /// `validate-config`; a 0.1 gate has none and accepts every config
    /// here (the host probes it with a decision instead).
    pub fn validate_config<T>(
        &self,
        store: &mut Store<T>,
        config: &str,
    ) -> wasmtime::Result<Result<(), Rejection>> {
        Ok(match self {
            Instance::V0_1(_) => Ok(()),
            Instance::V0_2(g) => g
                .omk_gate_policy()
                .call_validate_config(store, config)?
                .map_err(v0_2_0::rejection),
            Instance::V0_3(g) => g
                .omk_gate_policy()
                .call_validate_config(store, config)?
                .map_err(v0_3_0::rejection),
        })
    }

    pub fn check_proposal<T>(
        &self,
        store: &mut Store<T>,
        ctx: &GoalContext,
        p: &TaskProposal,
        config: &str,
    ) -> wasmtime::Result<Decision> {
        Ok(match self {
            Instance::V0_1(g) => v0_1_0::decision(g.omk_gate_policy().call_check_proposal(
                store,
                &v0_1_0::context(ctx),
                &v0_1_0::proposal(p),
                config,
            )?),
            Instance::V0_2(g) => v0_2_0::decision(g.omk_gate_policy().call_check_proposal(
                store,
                &v0_2_0::context(ctx),
                &v0_2_0::proposal(p),
                config,
            )?),
            Instance::V0_3(g) => v0_3_0::decision(g.omk_gate_policy().call_check_proposal(
                store,
                &v0_3_0::context(ctx),
                &v0_3_0::proposal(p),
                config,
            )?),
        })
    }

    /// `check-action`. A 0.1 gate is not asked about reads (see
    /// [`Pre::asks`]); asking it anyway is an error, so a caller's mistake
    /// fails closed.
    pub fn check_action<T>(
        &self,
        store: &mut Store<T>,
        ctx: &GoalContext,
        task: &TaskProposal,
        a: &AgentAction,
        config: &str,
    ) -> wasmtime::Result<Decision> {
        Ok(match self {
            Instance::V0_1(g) => {
                let Some(action) = v0_1_0::action(a) else {
                    wasmtime::bail!("`omk:gate@0.1.0` has no action kind for {:?}", a.kind);
                };
                v0_1_0::decision(g.omk_gate_policy().call_check_action(
                    store,
                    &v0_1_0::context(ctx),
                    &v0_1_0::proposal(task),
                    &action,
                    config,
                )?)
            }
            Instance::V0_2(g) => v0_2_0::decision(g.omk_gate_policy().call_check_action(
                store,
                &v0_2_0::context(ctx),
                &v0_2_0::proposal(task),
                &v0_2_0::action(a),
                config,
            )?),
            Instance::V0_3(g) => v0_3_0::action_decision(g.omk_gate_policy().call_check_action(
                store,
                &v0_3_0::context(ctx),
                &v0_3_0::proposal(task),
                &v0_3_0::action(a),
                config,
            )?),
        })
    }

    pub fn check_outcome<T>(
        &self,
        store: &mut Store<T>,
        ctx: &GoalContext,
        task: &TaskProposal,
        o: &TaskOutcome,
        config: &str,
    ) -> wasmtime::Result<Decision> {
        Ok(match self {
            Instance::V0_1(g) => v0_1_0::decision(g.omk_gate_policy().call_check_outcome(
                store,
                &v0_1_0::context(ctx),
                &v0_1_0::proposal(task),
                &v0_1_0::outcome(o),
                config,
            )?),
            Instance::V0_2(g) => v0_2_0::decision(g.omk_gate_policy().call_check_outcome(
                store,
                &v0_2_0::context(ctx),
                &v0_2_0::proposal(task),
                &v0_2_0::outcome(o),
                config,
            )?),
            Instance::V0_3(g) => v0_3_0::decision(g.omk_gate_policy().call_check_outcome(
                store,
                &v0_3_0::context(ctx),
                &v0_3_0::proposal(task),
                &v0_3_0::outcome(o),
                config,
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_functions_and_imports() {
        assert_eq!(minor("0.1.7"), minor("0.1.0"));
        assert_ne!(minor("0.2.0"), minor("0.1.0"));
        assert!(!functions("0.1.0").contains(&"validate-config"));
        assert!(functions("0.2.0").contains(&"validate-config"));
        assert!(provides("omk:gate/context@0.2.0", "0.2.0"));
        assert!(provides("omk:gate/context@0.3.0", "0.3.0"));
        assert!(!provides("omk:gate/context@0.2.0", "0.3.0"));
        assert!(!provides("omk:gate/context@0.2.0", "0.1.0"));
        assert!(!provides("omk:gate/context@0.1.0", "0.1.0"));
        assert!(!provides("omk:gate/policy@0.2.0", "0.2.0"));
        assert!(!provides("wasi:io/poll@0.2.0", "0.2.0"));
    }
}
