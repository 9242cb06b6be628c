//! README's namespace recipe, run as written: each line typed into an interactive bash in a
//! tmux pane (job control on, so `&` puts netpost in the background as it would for a
//! reader), and what each line prints checked. One substitution: `cargo xtask run --` is
//! the netpost binary the tests run (xtask would build a release binary first, then exec
//! the same program with the same arguments in the same process).
use std::{path::PathBuf, process::Command, time::Duration};

use netpost_tests::{netns::unique_name, netpost::binary, require_root, tmux::Tmux};

const PROMPT: &str = "recipe$ ";
const NAMESPACES: [&str; 2] = ["demo-a", "demo-b"];

/// The lines of the first `sh` block under "Trying it safely in a namespace".
fn recipe() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let section = &readme[readme
        .find("## Trying it safely in a namespace")
        .expect("README has the namespace section")..];
    let block = &section[section.find("```sh\n").expect("a sh block") + 6..];
    let block = &block[..block.find("```").expect("the block ends")];
    block.lines().map(str::to_string).collect()
}

fn namespaces() -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list")
            .stdout,
    )
    .into_owned()
}

fn exists(ns: &str) -> bool {
    namespaces()
        .lines()
        .any(|l| l.split_whitespace().next() == Some(ns))
}

/// Whatever the recipe left when the test fails: processes in its namespaces, the
/// namespaces, the working directory.
struct Cleanup {
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for ns in NAMESPACES {
            if !exists(ns) {
                continue;
            }
            let pids = Command::new("ip").args(["netns", "pids", ns]).output();
            for pid in pids
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
                .split_whitespace()
            {
                let _ = Command::new("kill").arg(pid).status();
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Prompts printed so far: one per finished line, plus the first.
fn prompts(tmux: &Tmux) -> usize {
    tmux.history()
        .lines()
        .filter(|l| l.starts_with(PROMPT.trim_end()))
        .count()
}

#[test]
fn the_readme_namespace_recipe_works_as_written() {
    require_root();
    for ns in NAMESPACES {
        assert!(
            !exists(ns),
            "the recipe creates {ns}, which exists already: delete it (`ip netns del {ns}`) to run this test"
        );
    }
    let dir = std::env::temp_dir().join(unique_name("nprec"));
    std::fs::create_dir_all(&dir).expect("a directory for the recipe");
    let cleanup = Cleanup { dir: dir.clone() };
    let lines = recipe();
    let launch = "cargo xtask run -- ";
    assert_eq!(
        lines.iter().filter(|l| l.contains(launch)).count(),
        1,
        "the recipe starts netpost once: {lines:#?}"
    );
    let netpost = format!("{} ", binary().display());
    let log = |dir: &PathBuf| std::fs::read_to_string(dir.join("netpost.log")).unwrap_or_default();

    let tmux = Tmux::shell(120, 40, &dir, PROMPT);
    tmux.wait_for("the shell", 10, |_| prompts(&tmux) == 1);
    for line in &lines {
        let typed = line.replace(launch, &netpost);
        let before = prompts(&tmux);
        tmux.type_line(&typed);
        if line.starts_with("fg") {
            let screen = tmux.wait_for("the dashboard after fg", 20, |s| {
                s.contains("packet path") && s.contains("established 2")
            });
            assert!(
                screen.contains("SYN 2 → SYN-ACK 2 → established 2"),
                "iperf3's two connections in the funnel:\n{screen}"
            );
            assert!(
                screen
                    .lines()
                    .any(|l| l.contains("10.99.0.1:") && l.contains("10.99.0.2:5201")),
                "their flow in top flows:\n{screen}"
            );
            tmux.keys("q");
        }
        let deadline = if line.starts_with("until") { 300 } else { 60 };
        tmux.wait_for(&format!("`{line}` to finish"), deadline, |_| {
            prompts(&tmux) > before
        });
        let history = tmux.history();
        if line.starts_with("until") {
            let log = log(&dir);
            assert!(
                log.contains("netpost: watching veth-b in netns demo-b"),
                "{log}"
            );
            assert!(
                log.contains("not in the terminal's foreground") && log.contains("`fg`"),
                "a background netpost says why it waits: {log}"
            );
        } else if line.contains("iperf3 -c") {
            assert!(
                history.contains("iperf Done.") && history.contains("receiver"),
                "{history}"
            );
        } else if line.contains("curl") {
            assert!(
                history.contains(r#"netpost_handshakes_total{stage="established"} 2"#),
                "{history}"
            );
        } else if line.starts_with("fg") {
            let log = log(&dir);
            assert!(log.contains("netpost: detached"), "{log}");
        } else if line.contains("netns pids") {
            std::thread::sleep(Duration::from_millis(300));
            let left = Command::new("ip")
                .args(["netns", "pids", "demo-b"])
                .output()
                .expect("ip netns pids");
            assert!(
                left.stdout.is_empty(),
                "the iperf3 server is gone: {:?}",
                String::from_utf8_lossy(&left.stdout)
            );
        }
    }
    for ns in NAMESPACES {
        assert!(!exists(ns), "the recipe's cleanup removes {ns}");
    }
    let history = tmux.history();
    for bad in ["Cannot assign requested address", "Stopped", "No such file"] {
        assert!(!history.contains(bad), "{bad}:\n{history}");
    }
    drop(cleanup);
}
