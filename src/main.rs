fn main() -> std::process::ExitCode {
    // The help and usage name the command as it was called (`kubectl fleetboot` as a plugin).
    let cli = fleetboot::commands::toolbox::parse_args();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fleetboot: failed to start the async runtime: {e}");
            return std::process::ExitCode::from(fleetboot::ExitCode::Internal as u8);
        }
    };
    let code = match runtime.block_on(fleetboot::commands::main(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fleetboot: {e}");
            e.exit_code()
        }
    };
    std::process::ExitCode::from(code as u8)
}
