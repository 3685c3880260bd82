//! The `omk` binary: argument parsing and printing ([`cli`]) over the `omk`
//! library, which does the work.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
