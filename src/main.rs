// mimalloc rather than glibc's malloc: at 10,000 nodes, 1,000 at a time, each wave's thousand
// returns are served with both cores saturated by fleetboot and the simulation (the same binary),
// and malloc/free were about a quarter of that burst's CPU (`perf`). With mimalloc the run's
// last wave's dispatch spread was 554-722 ms instead of 959-1,097 ms (README: alternated runs).
// Its cost: more memory held per thread (the SSH fan-out at --parallel 1000 peaks at 73 MB
// instead of 42 MB; the target is 100 MB).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
