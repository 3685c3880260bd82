//! The `omk` binary: see [`omk::cli`].

fn main() -> std::process::ExitCode {
    omk::cli::main()
}
