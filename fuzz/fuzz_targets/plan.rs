//! Dispatch plans and task graphs as an agent or a damaged disk could
//! write them: parsing returns a value or an error, never panics, and what
//! parses survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omk_core::graph::TaskGraph;
use omk_core::plan::DispatchPlan;

fuzz_target!(|data: &[u8]| {
    if let Ok(plan) = serde_json::from_slice::<DispatchPlan>(data) {
        let again: DispatchPlan =
            serde_json::from_slice(&serde_json::to_vec(&plan).expect("serialises"))
                .expect("round trip");
        assert_eq!(plan, again);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(graph) = TaskGraph::parse(text, "goal-fuzz") {
            let json = serde_json::to_string(&graph).expect("serialises");
            TaskGraph::parse(&json, "goal-fuzz").expect("a valid graph stays valid");
        }
    }
});
