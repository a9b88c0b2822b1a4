fn main() -> std::process::ExitCode {
    petitiond::cli::main()
}
