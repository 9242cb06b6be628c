//! `cargo xtask test --kernel K [--kernel K2 ...] [--full]`: the integration tests in VMs
//! booting other kernels, a summary table at the end, non-zero exit if anything failed.

use std::ffi::OsString;

use anyhow::bail;

use crate::apt::Apt;
use crate::kernels::KernelSpec;
use crate::matrix::{self, Run, Setup, smoke};
use crate::{bootstrap, probe, workspace};

pub fn matrix(kernels: &[String], full: bool, harness: &[OsString]) -> anyhow::Result<()> {
    if !probe::is_root() {
        bail!(
            "the kernel matrix installs its VM tools and kernels and runs the integration \
             tests as root: run it as root"
        );
    }
    let specs: Vec<KernelSpec> = kernels.iter().map(|k| KernelSpec::parse(k)).collect();
    let mut apt = Apt::default();
    bootstrap::ensure_toolchain(&mut apt)?;
    bootstrap::ensure_test_tools(&mut apt)?;
    let vng = bootstrap::ensure_vm_tools(&mut apt)?;
    let vmlinuz = bootstrap::ensure_kernels(&mut apt, &specs)?;

    let runs: Vec<Run> = matrix::build_tests()?
        .into_iter()
        .filter_map(|(binary, exe)| {
            let filters: Vec<String> = if full {
                Vec::new()
            } else {
                let tests = smoke::tests_of(&binary);
                if tests.is_empty() {
                    return None;
                }
                tests.iter().map(|t| t.to_string()).collect()
            };
            Some(Run {
                binary,
                exe,
                filters,
            })
        })
        .collect();
    let harness: Vec<String> = harness
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let target = workspace::target_dir()?;
    let verifier = target.join("debug").join("netpost-bench");
    let setup = Setup {
        vng: &vng,
        verifier: &verifier,
        workspace: workspace::root(),
        runs: &runs,
        harness: &harness,
        timeout_min: if full {
            matrix::FULL_TIMEOUT_MIN
        } else {
            matrix::SMOKE_TIMEOUT_MIN
        },
    };
    let out_root = target.join("kernel-matrix");
    let mut results = Vec::new();
    for (asked, vmlinuz) in kernels.iter().zip(&vmlinuz) {
        let name = vmlinuz
            .file_name()
            .map_or_else(|| asked.clone(), |n| n.to_string_lossy().into_owned());
        results.push(matrix::run_kernel(
            &setup,
            asked,
            vmlinuz,
            &out_root.join(name),
        )?);
    }
    let summary = matrix::table(&results);
    println!("\n{summary}");
    let _ = std::fs::write(out_root.join("summary.txt"), &summary);
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.ok())
        .map(|r| r.asked.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "the kernel matrix failed on {} (logs in {})",
            failed.join(", "),
            out_root.display()
        );
    }
    Ok(())
}
