//! Gate components built at test time from WAT: a hand-written canonical
//! ABI for `omk:gate/policy@0.1.0`, encoded with `wit-component`. No wasm
//! toolchain needed.
//!
//! Every `check-*` function takes one pointer (its flattened parameters are
//! more than 16) and returns a pointer to a `decision` in a return area at
//! [`RET`]. `describe` returns a `gate-info` there.

use std::path::Path;

use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

/// Where results are written.
const RET: u32 = 256;

/// Offset of `proposal.id` in `check-proposal`'s parameter block: it
/// follows the 136-byte, 8-aligned `goal-context`.
const PROPOSAL_ID: u32 = 136;

/// What `check-proposal` does.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    Accept,
    Reject,
    /// Spins forever.
    Loop,
    /// Grows memory until refused.
    MemoryBomb,
    /// Grows a table until refused.
    TableBomb,
    /// Executes `unreachable`.
    Trap,
    /// Recurses until the stack overflows.
    Recurse,
    /// Rejects with a reason of 1,000,000 bytes.
    Oversize,
    /// Grows memory by 100 MiB and rejects with a reason that long.
    HugeResult,
    /// Rejects with a reason that is not UTF-8.
    BadUtf8,
    /// Returns a string pointer past the end of memory.
    OutOfBounds,
    /// Rejects with the code `gate.fault.trap`, which belongs to the host.
    HostCode,
    /// Traps when the proposal's id starts with `b`, accepts otherwise.
    TrapOnB,
    /// Counts its calls in a global and in memory, and rejects from the
    /// second call of the same instance on: it accepts every time only
    /// where each decision gets a fresh instance.
    Counter,
}

/// The WIT of the gate contract.
fn wit_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/v0.1.0")
}

fn body(b: Body) -> String {
    let reject = |code_ptr: u32, code_len: u32, reason_ptr: u32, reason_len: u32| {
        format!(
            "(i32.store8 (i32.const {RET}) (i32.const 1))
             (i32.store (i32.const {c1}) (i32.const {code_ptr}))
             (i32.store (i32.const {c2}) (i32.const {code_len}))
             (i32.store (i32.const {r1}) (i32.const {reason_ptr}))
             (i32.store (i32.const {r2}) (i32.const {reason_len}))
             (i32.const {RET})",
            c1 = RET + 4,
            c2 = RET + 8,
            r1 = RET + 12,
            r2 = RET + 16
        )
    };
    let accept = format!("(i32.store8 (i32.const {RET}) (i32.const 0)) (i32.const {RET})");
    match b {
        Body::Accept => accept,
        Body::Reject => reject(512, 10, 544, 28),
        Body::Loop => "(loop $l (br $l)) (unreachable)".into(),
        Body::MemoryBomb => "(loop $l (drop (memory.grow (i32.const 16))) (br $l)) (unreachable)".into(),
        Body::TableBomb => "(loop $l (drop (table.grow $t (ref.null func) (i32.const 100000))) (br $l)) (unreachable)".into(),
        Body::Trap => "(unreachable)".into(),
        Body::Recurse => "(call $recurse (i32.const 0)) (drop) (i32.const 0)".into(),
        Body::Oversize => reject(512, 10, 65536, 1_000_000),
        Body::HugeResult => format!(
            "(drop (memory.grow (i32.const 1700))) {}",
            reject(512, 10, 2 << 20, 100 << 20)
        ),
        Body::BadUtf8 => reject(512, 10, 600, 4),
        Body::OutOfBounds => reject(512, 10, 0x7fff_0000, 16),
        Body::HostCode => reject(608, 15, 544, 28),
        Body::Counter => format!(
            "(global.set $calls (i32.add (global.get $calls) (i32.const 1)))
             (i32.store8 (i32.const 700) (i32.add (i32.load8_u (i32.const 700)) (i32.const 1)))
             (if (result i32) (i32.or (i32.gt_u (global.get $calls) (i32.const 1))
                                      (i32.gt_u (i32.load8_u (i32.const 700)) (i32.const 1)))
               (then {reject_state})
               (else {accept}))",
            reject_state = reject(512, 10, 544, 28)
        ),
        Body::TrapOnB => format!(
            "(if (i32.eq (i32.load8_u (i32.load offset={PROPOSAL_ID} (local.get 0))) (i32.const 98))
               (then (unreachable)))
             {accept}"
        ),
    }
}

/// Offset of `action.kind` in `check-action`'s parameter block: after the
/// 136-byte `goal-context`, the 80-byte `task-proposal` and the action's
/// `task-id`.
const ACTION_KIND: u32 = 224;

/// What `check-action` does.
#[derive(Debug, Clone, Copy)]
pub enum ActionBody {
    Accept,
    /// Rejects every `run-command` (`hostile.no-commands`).
    RefuseCommands,
    /// Executes `unreachable`.
    Trap,
}

/// A core module implementing the gate; `describe` traps when
/// `describe_trap` is set.
fn module(check: Body, describe_trap: bool) -> String {
    module_with(check, ActionBody::Accept, describe_trap)
}

/// [`module`], with `check-action` doing `action`.
fn module_with(check: Body, action: ActionBody, describe_trap: bool) -> String {
    let describe = if describe_trap {
        "(unreachable)".to_owned()
    } else {
        format!(
            "(i32.store (i32.const {a}) (i32.const 16)) (i32.store (i32.const {b}) (i32.const 7))
             (i32.store (i32.const {c}) (i32.const 32)) (i32.store (i32.const {d}) (i32.const 5))
             (i32.store (i32.const {e}) (i32.const 48)) (i32.store (i32.const {f}) (i32.const {stages}))
             (i32.store (i32.const {g}) (i32.const 64)) (i32.store (i32.const {h}) (i32.const 17))
             (i32.const {RET})",
            a = RET,
            b = RET + 4,
            c = RET + 8,
            d = RET + 12,
            e = RET + 16,
            f = RET + 20,
            g = RET + 24,
            h = RET + 28,
            // The proposal stage; and the action stage where it does more
            // than accept.
            stages = if matches!(action, ActionBody::Accept) { 1 } else { 2 }
        )
    };
    let accept = body(Body::Accept);
    let check = body(check);
    let action = match action {
        ActionBody::Accept => accept.clone(),
        ActionBody::Trap => "(unreachable)".into(),
        ActionBody::RefuseCommands => format!(
            "(if (result i32) (i32.eq (i32.load8_u offset={ACTION_KIND} (local.get 0)) (i32.const 2))
               (then (i32.store8 (i32.const {RET}) (i32.const 1))
                     (i32.store (i32.const {c1}) (i32.const 800)) (i32.store (i32.const {c2}) (i32.const 19))
                     (i32.store (i32.const {r1}) (i32.const 832)) (i32.store (i32.const {r2}) (i32.const 36))
                     (i32.const {RET}))
               (else {accept}))",
            c1 = RET + 4,
            c2 = RET + 8,
            r1 = RET + 12,
            r2 = RET + 16
        ),
    };
    format!(
        r#"(module
  (memory (export "memory") 20)
  (table $t 1 funcref)
  (global $heap (mut i32) (i32.const 1114112))
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 16) "hostile")
  (data (i32.const 32) "0.1.0")
  (data (i32.const 48) "\00\01")
  (data (i32.const 64) "hostile test gate")
  (data (i32.const 512) "hostile.no")
  (data (i32.const 544) "rejected by the hostile gate")
  (data (i32.const 600) "\ff\fe\fd\fc")
  (data (i32.const 608) "gate.fault.trap")
  ;; (byte 700 is the Counter body's; the strings start above it)
  (data (i32.const 800) "hostile.no-commands")
  (data (i32.const 832) "commands are not run in this project")
  (func $recurse (param i32) (result i32)
    (call $recurse (i32.add (local.get 0) (i32.const 1))))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow
        (i32.add (i32.div_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
                            (i32.const 65536)) (i32.const 1))))))
    (local.get $p))
  (func (export "omk:gate/policy@0.1.0#describe") (result i32) {describe})
  (func (export "omk:gate/policy@0.1.0#check-proposal") (param i32) (result i32) {check})
  (func (export "omk:gate/policy@0.1.0#check-action") (param i32) (result i32) {action})
  (func (export "omk:gate/policy@0.1.0#check-outcome") (param i32) (result i32) {accept})
)"#
    )
}

/// Encodes a core module (WAT) as a component of `world` from `wit`
/// (the gate contract when `None`).
fn encode(wat_src: &str, wit: Option<&str>, world: &str) -> Vec<u8> {
    let mut resolve = Resolve::default();
    let pkg = match wit {
        None => resolve.push_dir(wit_dir()).expect("gate WIT parses").0,
        Some(text) => resolve.push_str("test.wit", text).expect("test WIT parses"),
    };
    let world = resolve
        .select_world(&[pkg], Some(world))
        .expect("world exists");
    let mut module = wat::parse_str(wat_src).expect("WAT parses");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        StringEncoding::UTF8,
        false,
    )
    .expect("metadata embeds");
    ComponentEncoder::default()
        .module(&module)
        .expect("module reads")
        .validate(true)
        .encode()
        .expect("component encodes")
}

/// A gate whose `check-proposal` does `b`.
pub fn gate(b: Body) -> Vec<u8> {
    encode(&module(b, false), None, "gate")
}

/// A gate that accepts every proposal and whose `check-action` does
/// `action`.
pub fn action_gate(action: ActionBody) -> Vec<u8> {
    encode(&module_with(Body::Accept, action, false), None, "gate")
}

/// A gate that traps in `describe`.
pub fn gate_trapping_in_describe() -> Vec<u8> {
    encode(&module(Body::Accept, true), None, "gate")
}

/// The gate contract at another version.
pub fn gate_of_version(version: &str) -> Vec<u8> {
    let wit = std::fs::read_to_string(wit_dir().join("gate.wit"))
        .unwrap()
        .replace(
            "package omk:gate@0.1.0;",
            &format!("package omk:gate@{version};"),
        );
    let wat_src = module(Body::Accept, false).replace("@0.1.0#", &format!("@{version}#"));
    encode(&wat_src, Some(&wit), "gate")
}

/// A gate that also imports a host function `host-clock`.
pub fn gate_with_import() -> Vec<u8> {
    let wit = std::fs::read_to_string(wit_dir().join("gate.wit"))
        .unwrap()
        .replace(
            "world gate {",
            "world gate {\n    import host-clock: func() -> u64;",
        );
    let wat_src = module(Body::Accept, false).replacen(
        "(memory (export \"memory\") 20)",
        "(import \"$root\" \"host-clock\" (func (result i64)))\n  (memory (export \"memory\") 20)",
        1,
    );
    encode(&wat_src, Some(&wit), "gate")
}

/// A component of another world entirely.
pub fn other_world() -> Vec<u8> {
    encode(
        r#"(module (func (export "answer") (result i32) (i32.const 42)))"#,
        Some("package test:other;\nworld other {\n  export answer: func() -> u32;\n}\n"),
        "other",
    )
}

/// A gate whose `policy` export lacks `check-outcome`.
pub fn gate_missing_function() -> Vec<u8> {
    let wit = std::fs::read_to_string(wit_dir().join("gate.wit"))
        .unwrap()
        .replace(
            "check-outcome: func(ctx: goal-context, task: task-proposal, outcome: task-outcome, config: string) -> decision;",
            "",
        );
    let wat_src = module(Body::Accept, false).replace(
        "(func (export \"omk:gate/policy@0.1.0#check-outcome\") (param i32) (result i32)",
        "(func (param i32) (result i32)",
    );
    encode(&wat_src, Some(&wit), "gate")
}

/// A core module (not a component) of the gate.
pub fn core_module() -> Vec<u8> {
    wat::parse_str(module(Body::Accept, false)).unwrap()
}

/// A gate that imports `<package>/<interface>` (a one-function interface
/// standing in for a WASI capability), e.g. `wasi:clocks@0.2.0`,
/// `wall-clock`.
pub fn gate_importing(package: &str, interface: &str) -> Vec<u8> {
    let (ns_name, version) = package.split_once('@').unwrap();
    let import = format!("{ns_name}/{interface}@{version}");
    let mut resolve = Resolve::default();
    resolve
        .push_str(
            "cap.wit",
            &format!("package {package};\ninterface {interface} {{\n  f: func() -> u64;\n}}\n"),
        )
        .expect("capability WIT parses");
    let gate = std::fs::read_to_string(wit_dir().join("gate.wit"))
        .unwrap()
        .replace(
            "world gate {",
            &format!("world gate {{\n    import {import};"),
        );
    let pkg = resolve
        .push_str("gate.wit", &gate)
        .expect("gate WIT parses");
    let world = resolve.select_world(&[pkg], Some("gate")).unwrap();
    let wat_src = module(Body::Accept, false).replacen(
        "(memory (export \"memory\") 20)",
        &format!(
            "(import \"{import}\" \"f\" (func (result i64)))\n  (memory (export \"memory\") 20)"
        ),
        1,
    );
    let mut m = wat::parse_str(wat_src).unwrap();
    wit_component::embed_component_metadata(&mut m, &resolve, world, StringEncoding::UTF8, false)
        .unwrap();
    ComponentEncoder::default()
        .module(&m)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}
