//! The std `budget` gate: no task is admitted that the goal cannot pay for.
//!
//! At the proposal stage it rejects, in this order:
//! - a task with a zero time budget (`budget.zero`);
//! - a task longer than the `max_task_secs` setting (`budget.task-too-long`);
//! - any task once the goal's tokens (`budget.tokens-exhausted`) or money
//!   (`budget.usd-exhausted`) are spent;
//! - a task whose `budget_secs`, added to the time already spent and
//!   committed, would pass the goal's time budget (`budget.time-exceeded`,
//!   "would exceed goal time budget").
//!
//! Settings (all optional): `max_task_secs` (u64).

use omk_gate_sdk::{
    Decision, GateInfo, GoalContext, Policy, Rejection, Stage, TaskProposal, config,
};
use serde::Deserialize;

/// The gate's name, as used in `.omk/gates.toml` and in codes.
pub const NAME: &str = "budget";

/// The `budget` gate.
pub struct BudgetGate;

/// The gate's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Longest time budget a single task may ask for, in seconds.
    pub max_task_secs: Option<u64>,
}

impl Policy for BudgetGate {
    fn info() -> GateInfo {
        GateInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            stages: vec![Stage::Proposal],
            description: "admits a task only if the goal's time, token and USD budgets cover it"
                .into(),
        }
    }

    fn validate_config(raw: &str) -> Result<(), Rejection> {
        config::check::<Settings>(NAME, raw)
    }

    fn check_proposal(ctx: &GoalContext, p: &TaskProposal, raw: &str) -> Decision {
        let settings: Settings = match config::parse(NAME, raw) {
            Ok(s) => s,
            Err(d) => return d,
        };
        let id = &p.id;
        if p.budget_secs == 0 {
            return Decision::reject(
                "budget.zero",
                format!("task `{id}` has a zero time budget; give it `budget_secs` above 0"),
            );
        }
        if let Some(max) = settings.max_task_secs
            && p.budget_secs > max
        {
            return Decision::reject(
                "budget.task-too-long",
                format!(
                    "task `{id}` asks for {}s, more than the {max}s a single task may take; split it",
                    p.budget_secs
                ),
            );
        }
        let b = &ctx.budget;
        if let Some(limit) = b.token_limit
            && b.tokens_spent >= limit
        {
            return Decision::reject(
                "budget.tokens-exhausted",
                format!(
                    "goal token budget is spent ({} of {limit} tokens used); add budget to admit task `{id}`",
                    b.tokens_spent
                ),
            );
        }
        if let Some(limit) = b.usd_limit_micros
            && b.usd_spent_micros >= limit
        {
            return Decision::reject(
                "budget.usd-exhausted",
                format!(
                    "goal USD budget is spent ({} of {} used); add budget to admit task `{id}`",
                    usd(b.usd_spent_micros),
                    usd(limit)
                ),
            );
        }
        if let Some(limit) = b.time_limit_secs {
            let used = b.time_spent_secs.saturating_add(b.time_committed_secs);
            if used.saturating_add(p.budget_secs) > limit {
                return Decision::reject(
                    "budget.time-exceeded",
                    format!(
                        "task `{id}` needs {}s, which would exceed goal time budget: \
                         {}s spent + {}s committed + {}s > {limit}s",
                        p.budget_secs, b.time_spent_secs, b.time_committed_secs, p.budget_secs
                    ),
                );
            }
        }
        Decision::Accept
    }
}

fn usd(micros: u64) -> String {
    format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

#[cfg(target_arch = "wasm32")]
omk_gate_sdk::export_gate!(BudgetGate);

#[cfg(test)]
mod tests {
    use super::*;
    use omk_gate_sdk::Budget;

    fn proposal(secs: u64) -> TaskProposal {
        serde_json::from_value(serde_json::json!({"id": "t", "budget_secs": secs})).unwrap()
    }

    fn ctx(budget: Budget) -> GoalContext {
        GoalContext {
            budget,
            ..Default::default()
        }
    }

    fn code(d: Decision) -> Option<String> {
        d.rejection().map(|r| r.code.clone())
    }

    #[test]
    fn over_time_budget_is_rejected_with_the_phrase() {
        let b = Budget {
            time_limit_secs: Some(10),
            ..Default::default()
        };
        let d = BudgetGate::check_proposal(&ctx(b), &proposal(120), "{}");
        let r = d.rejection().unwrap();
        assert_eq!(r.code, "budget.time-exceeded");
        assert!(
            r.reason.contains("would exceed goal time budget"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn committed_time_counts() {
        let mut b = Budget {
            time_limit_secs: Some(3600),
            ..Default::default()
        };
        assert!(BudgetGate::check_proposal(&ctx(b.clone()), &proposal(2400), "").is_accept());
        b.time_committed_secs = 2400;
        assert_eq!(
            code(BudgetGate::check_proposal(
                &ctx(b.clone()),
                &proposal(2400),
                ""
            ))
            .as_deref(),
            Some("budget.time-exceeded")
        );
        // Exactly filling the budget is fine.
        assert!(BudgetGate::check_proposal(&ctx(b), &proposal(1200), "").is_accept());
    }

    #[test]
    fn unlimited_and_overflow() {
        assert!(
            BudgetGate::check_proposal(&ctx(Budget::default()), &proposal(u64::MAX), "")
                .is_accept()
        );
        let b = Budget {
            time_limit_secs: Some(u64::MAX - 1),
            time_spent_secs: u64::MAX,
            ..Default::default()
        };
        assert_eq!(
            code(BudgetGate::check_proposal(&ctx(b), &proposal(1), "")).as_deref(),
            Some("budget.time-exceeded")
        );
    }

    #[test]
    fn zero_budget_tokens_usd_and_max() {
        let c = ctx(Budget::default());
        assert_eq!(
            code(BudgetGate::check_proposal(&c, &proposal(0), "")).as_deref(),
            Some("budget.zero")
        );
        let b = Budget {
            token_limit: Some(100),
            tokens_spent: 100,
            ..Default::default()
        };
        assert_eq!(
            code(BudgetGate::check_proposal(&ctx(b), &proposal(1), "")).as_deref(),
            Some("budget.tokens-exhausted")
        );
        let b = Budget {
            usd_limit_micros: Some(5_000_000),
            usd_spent_micros: 5_000_001,
            ..Default::default()
        };
        let d = BudgetGate::check_proposal(&ctx(b), &proposal(1), "");
        assert!(d.rejection().unwrap().reason.contains("$5.000001"));
        assert_eq!(
            code(BudgetGate::check_proposal(
                &c,
                &proposal(61),
                r#"{"max_task_secs":60}"#
            ))
            .as_deref(),
            Some("budget.task-too-long")
        );
        assert_eq!(
            code(BudgetGate::check_proposal(
                &c,
                &proposal(61),
                r#"{"max_secs":60}"#
            ))
            .as_deref(),
            Some("budget.config-invalid")
        );
    }
}
