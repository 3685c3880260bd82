//! End-to-end tests: the real `omk` binary and real components, in
//! temporary projects. Every test goes through [`support::Omk`].

mod support;

mod agents;
mod approvals;
mod attacks;
mod authoring;
mod bundles;
mod cli;
mod commands;
mod confinement;
mod execute;
mod gate_check;
mod goals;
mod guard;
mod hostile;
mod integrity;
mod mcp;
mod proof;
mod reads;
mod reliability;
mod serve;
mod std_gates;
mod workers;
