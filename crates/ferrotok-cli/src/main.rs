fn main() -> std::process::ExitCode {
    ferrotok_cli::main()
}
