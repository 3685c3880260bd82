//! What omk tells a coding agent, and how it reads the agent's answer.
//!
//! The prompt names the goal, the task, the files the task may change and
//! its acceptance criteria, and documents one convention: lines
//! `OMK_TASK_PROPOSAL: {json}` and `OMK_EVIDENCE: {json}` in the agent's
//! final message propose follow-up tasks and offer evidence, exactly as the
//! exec agent prints them. The final message itself, with how the agent
//! stopped, becomes evidence for the outcome gates.

use omk_gate_sdk::Evidence;

use super::{Brief, Hooks, Job, Report, read_protocol_line};

/// The prompt for one task.
pub fn task(job: &Job) -> String {
    let t = &job.task;
    let mut p = String::new();
    p.push_str("You are one coding agent working on a goal under omk, which checks every file change and command you make against the project's policy gates.\n\n");
    p.push_str(&format!("Goal: {}\n", job.goal));
    p.push_str(&format!(
        "Your task (`{}`): {}\n",
        t.id,
        or(&t.title, &t.id)
    ));
    if !t.description.trim().is_empty() {
        p.push_str(&format!("{}\n", t.description.trim()));
    }
    p.push_str("\nWork only in the current directory.");
    if t.write_set.is_empty() {
        p.push_str(" This task may not change any file.\n");
    } else {
        p.push_str(&format!(
            " You may change only files under: {}. Changes anywhere else are refused.\n",
            t.write_set.join(", ")
        ));
    }
    if !t.acceptance.is_empty() {
        p.push_str("\nThe task is accepted when:\n");
        for a in &t.acceptance {
            p.push_str(&format!("- {a}\n"));
        }
    }
    p.push_str(CONVENTION);
    p
}

/// The prompt for planning a goal: no changes, only proposals.
pub fn plan(brief: &Brief) -> String {
    let mut p = format!(
        "You are planning a goal under omk; do not change any file (changes are refused while planning).\n\nGoal: {}\n",
        brief.goal
    );
    if !brief.policy_roots.is_empty() {
        p.push_str(&format!(
            "Tasks may change only files under: {}.\n",
            brief.policy_roots.join(", ")
        ));
    }
    p.push_str("\nLook at the project in the current directory and break the goal into tasks. Answer with one line per task, each exactly:\n");
    p.push_str(PROPOSAL_FORMAT);
    p
}

const PROPOSAL_FORMAT: &str = "OMK_TASK_PROPOSAL: {\"id\": \"short-id\", \"title\": \"…\", \"description\": \"…\", \"write_set\": [\"dir/or/file\"], \"acceptance\": [\"run: <command that must pass>\"], \"budget_secs\": 600}\n";

const CONVENTION: &str = "\nWhen you are done, end with a short summary of what you did. In that final message you may add, each on a line of its own:\n- a follow-up task for omk to consider: OMK_TASK_PROPOSAL: {\"id\": \"short-id\", \"title\": \"…\", \"write_set\": [\"…\"], \"acceptance\": [\"…\"], \"budget_secs\": 600}\n- evidence for an acceptance criterion: OMK_EVIDENCE: {\"kind\": \"note\", \"summary\": \"…\", \"criterion\": \"…\"}\n";

fn or<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.trim().is_empty() { b } else { a }
}

/// Reads an agent's final message into `report`: its protocol lines, and
/// the message with how the agent stopped as evidence.
pub fn read_final(text: &str, stopped: &str, report: &mut Report, hooks: &dyn Hooks, task: &str) {
    for line in text.lines() {
        if let Some(problem) = read_protocol_line(line, report) {
            hooks.note(
                "agent_protocol_error",
                serde_json::json!({"task_id": task, "problem": problem}),
            );
        }
    }
    let summary = crate::text::clip(text.trim(), 2000);
    report.evidence.push(Evidence {
        kind: "agent-message".into(),
        summary: if summary.is_empty() {
            format!("the agent stopped ({stopped}) without a final message")
        } else {
            format!("{summary}\n(the agent stopped: {stopped})")
        },
        path: None,
        criterion: None,
    });
    if report.output_tail.is_empty() {
        report.output_tail = crate::text::clip(text, 4000);
    }
}

/// Records the text an agent wrote before a tool call as a note, and
/// empties it.
pub fn note_message(hooks: &dyn Hooks, task: Option<&str>, message: &mut String) {
    let m = std::mem::take(message);
    if !m.trim().is_empty() {
        hooks.note(
            "agent_message",
            serde_json::json!({"task_id": task, "text": crate::text::clip(&m, 2000)}),
        );
    }
}

/// Reads planning answers: the proposals in an agent's final message.
pub fn read_plan(text: &str, hooks: &dyn Hooks) -> Vec<omk_gate_sdk::TaskProposal> {
    let mut report = Report::default();
    for line in text.lines() {
        if let Some(problem) = read_protocol_line(line, &mut report) {
            hooks.note(
                "agent_protocol_error",
                serde_json::json!({"problem": problem}),
            );
        }
    }
    report.proposals
}

/// USD as micro-dollars, saturating; negative or NaN is 0.
pub fn usd_micros(usd: f64) -> u64 {
    let m = (usd * 1e6).round();
    if m.is_finite() && m > 0.0 {
        if m >= u64::MAX as f64 {
            u64::MAX
        } else {
            m as u64
        }
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_converts_and_saturates() {
        assert_eq!(usd_micros(0.012345), 12_345);
        assert_eq!(usd_micros(-1.0), 0);
        assert_eq!(usd_micros(f64::NAN), 0);
        assert_eq!(usd_micros(1e30), u64::MAX);
    }
}
