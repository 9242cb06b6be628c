//! Compiles netpost-ebpf for the BPF target so `cargo build` embeds a fresh object
//! (OUT_DIR/netpost) in the binary.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "netpost-ebpf")
        .ok_or_else(|| anyhow!("netpost-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    // aya-build turns every line the inner cargo prints into a `cargo:warning`, and cargo
    // replays a build script's warnings on every later build, even when nothing is rebuilt:
    // ~40 "Compiling ..." lines per `cargo xtask run`. A quiet inner cargo prints only what
    // matters (compiler warnings and errors still come through its JSON messages).
    // SAFETY: single-threaded here; the variable is read by the cargo child spawned below.
    unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("building the eBPF programs (run `cargo xtask bootstrap` if the toolchain is missing)")
}
