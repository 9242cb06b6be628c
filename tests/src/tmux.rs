//! A tmux server of a test's own, to run netpost (or a shell) in a real terminal of a given
//! size and read the screen back as a person would.
use std::{
    process::Command,
    time::{Duration, Instant},
};

use crate::netns::unique_name;

/// Printed after the command by [`Tmux::start`]: the command's exit status follows.
pub const EXIT_MARK: &str = "netpost-exit-status=";

/// A tmux server of the test's own (its socket name is unique), killed on drop with
/// everything running in it, even when the test fails.
pub struct Tmux {
    socket: String,
    /// The server's socket file, which kill-server leaves behind.
    socket_path: Option<String>,
}

impl Tmux {
    /// Runs `command` in a detached `width`x`height` pane. A shell line after it prints
    /// netpost's exit status and keeps the pane open so the screen can still be read.
    pub fn start(width: u16, height: u16, command: &str) -> Tmux {
        let mut tmux = Tmux {
            socket: unique_name("npd"),
            socket_path: None,
        };
        let line = format!("{command}; echo {EXIT_MARK}$?; sleep 600");
        let (w, h) = (width.to_string(), height.to_string());
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "dash",
            "-x",
            &w,
            "-y",
            &h,
            &line,
        ]);
        tmux.socket_path = Some(tmux.display("#{socket_path}"));
        tmux
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run tmux ({e}): the dashboard test needs it (cargo xtask test installs it)")
            });
        assert!(
            out.status.success(),
            "tmux {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "dash"])
    }

    pub fn display(&self, format: &str) -> String {
        self.run(&["display-message", "-p", "-t", "dash", format])
            .trim()
            .to_string()
    }

    pub fn keys(&self, keys: &str) {
        self.run(&["send-keys", "-t", "dash", keys]);
    }

    /// Polls the screen until `done` accepts it; panics with the last screen after `secs`.
    pub fn wait_for(&self, what: &str, secs: u64, mut done: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {secs}s; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for netpost to have exited and returns its exit status.
    pub fn exit_status(&self) -> i32 {
        let screen = self.wait_for("netpost exiting", 20, |s| s.contains(EXIT_MARK));
        let status = screen
            .lines()
            .find_map(|l| l.trim().strip_prefix(EXIT_MARK))
            .expect("exit line");
        status
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("exit status {status:?}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Tmux {
    /// An interactive bash (no rc files, job control on) in `dir`, its prompt set to
    /// `prompt`, in a `width`x`height` pane.
    pub fn shell(width: u16, height: u16, dir: &std::path::Path, prompt: &str) -> Tmux {
        let mut tmux = Tmux {
            socket: unique_name("npd"),
            socket_path: None,
        };
        let (w, h) = (width.to_string(), height.to_string());
        let dir = dir.display().to_string();
        let shell = format!("env PS1='{prompt}' bash --norc --noprofile -i");
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "dash",
            "-c",
            &dir,
            "-x",
            &w,
            "-y",
            &h,
            &shell,
        ]);
        tmux.socket_path = Some(tmux.display("#{socket_path}"));
        tmux
    }

    /// The whole pane, scrollback included (the normal screen; the alternate one while a
    /// full-screen program runs).
    pub fn history(&self) -> String {
        self.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", "dash"])
    }

    /// Types `line` and Enter, literally.
    pub fn type_line(&self, line: &str) {
        self.run(&["send-keys", "-t", "dash", "-l", line]);
        self.run(&["send-keys", "-t", "dash", "Enter"]);
    }
}

/// The rows inside the panel whose top border carries `title` (" title " right after the
/// corner), between its side borders; None when no such panel is on the screen.
pub fn panel(screen: &str, title: &str) -> Option<Vec<String>> {
    let grid: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    let want: Vec<char> = format!(" {title}").chars().collect();
    for (y, row) in grid.iter().enumerate() {
        for left in 0..row.len() {
            if !matches!(row[left], '┌' | '╔') || !row[left + 1..].starts_with(&want) {
                continue;
            }
            let right = left + row[left..].iter().position(|c| matches!(c, '┐' | '╗'))?;
            let mut out = vec![];
            for row in &grid[y + 1..] {
                if matches!(row.get(left), Some('└' | '╚')) {
                    return Some(out);
                }
                out.push(row.get(left + 1..right)?.iter().collect());
            }
            return Some(out);
        }
    }
    None
}
