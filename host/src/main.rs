fn main() -> std::process::ExitCode {
    ucms::cli::main()
}
