// The daemon allocates a little per event on many threads; mimalloc keeps
// that cheap (see README "Benchmarks" for the measured difference).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    jobhook::cli::main()
}
