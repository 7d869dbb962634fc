// The daemon allocates a little per event on many threads; mimalloc keeps
// that cheap (see README "Benchmarks" for the measured difference). Its v2
// line: the crate asks for every block with an alignment, which mimalloc v3
// serves through a slow over-allocating path for most sizes.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    jobhook::cli::main()
}
