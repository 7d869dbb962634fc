fn main() -> std::process::ExitCode {
    jobhook::cli::main()
}
