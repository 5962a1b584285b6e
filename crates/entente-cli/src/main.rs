//! The `entente` binary: everything it does is in the `entente_cli` library.

fn main() -> std::process::ExitCode {
    entente_cli::main()
}
