//! Runs external commands, echoing each one (`+ ...` on stderr) before it runs.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context as _, anyhow};

use crate::workspace;

/// A command that ran and did not succeed; `code` is what xtask exits with.
#[derive(Debug)]
pub struct Failed {
    pub command: String,
    pub code: i32,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` failed with exit code {}", self.command, self.code)
    }
}

impl std::error::Error for Failed {}

pub struct Cmd {
    inner: Command,
    /// Shell-like rendering for the echo and for errors.
    shown: Vec<String>,
    /// Shown as `cd <dir> &&` when the command runs outside the workspace root.
    cd: Option<String>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref();
        Self {
            inner: Command::new(program),
            shown: vec![quote(&program.to_string_lossy())],
            cd: None,
        }
    }

    /// `cargo` through rustup's proxy (so `+nightly` works), run at the workspace root because
    /// cargo picks the package from the current directory.
    pub fn cargo() -> Self {
        let mut cmd = Self::new("cargo");
        cmd.inner.current_dir(workspace::root());
        cmd
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        let arg = arg.as_ref();
        self.shown.push(quote(&arg.to_string_lossy()));
        self.inner.arg(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(self, args: I) -> Self {
        args.into_iter().fold(self, Self::arg)
    }

    pub fn arg_if(self, cond: bool, arg: impl AsRef<OsStr>) -> Self {
        if cond { self.arg(arg) } else { self }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.shown.insert(0, format!("{key}={}", quote(value)));
        self.inner.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        let shown = dir.strip_prefix(workspace::root()).unwrap_or(dir);
        self.cd = (!shown.as_os_str().is_empty()).then(|| quote(&shown.to_string_lossy()));
        self.inner.current_dir(dir);
        self
    }

    fn display(&self) -> String {
        let line = self.shown.join(" ");
        match &self.cd {
            Some(dir) => format!("cd {dir} && {line}"),
            None => line,
        }
    }

    fn echo(&self) {
        eprintln!("+ {}", self.display());
    }

    /// Runs to completion; a non-zero exit becomes [`Failed`].
    pub fn run(mut self) -> anyhow::Result<()> {
        self.echo();
        let status = self
            .inner
            .status()
            .with_context(|| format!("cannot start `{}`", self.display()))?;
        self.check(status)
    }

    /// Runs and returns its stdout (stderr still reaches the terminal).
    pub fn output(mut self) -> anyhow::Result<String> {
        self.echo();
        let out = self
            .inner
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot start `{}`", self.display()))?;
        self.check(out.status)?;
        String::from_utf8(out.stdout)
            .with_context(|| format!("`{}` printed invalid UTF-8", self.display()))
    }

    /// Runs to completion, echoing stdout line by line and handing each line to `on_line`.
    pub fn run_tee(mut self, mut on_line: impl FnMut(&str)) -> anyhow::Result<()> {
        self.echo();
        let mut child = self
            .inner
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.display()))?;
        let stdout = child.stdout.take().context("stdout pipe")?;
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let line = line.context("reading stdout")?;
            println!("{line}");
            on_line(&line);
        }
        let status = child.wait().context("waiting for the command")?;
        self.check(status)
    }

    /// Runs to completion with stdout and stderr merged into one pipe, each line echoed and
    /// copied to `copy`. For programs that must not get our stdout itself: virtme-ng's console writes
    /// to a file given as stdout from its start, over what was there.
    pub fn run_merged(mut self, copy: &mut impl std::io::Write) -> anyhow::Result<()> {
        self.echo();
        let (reader, writer) = std::io::pipe().context("creating a pipe")?;
        let spawned = self
            .inner
            .stdin(Stdio::null())
            .stdout(writer.try_clone().context("duplicating a pipe")?)
            .stderr(writer)
            .spawn();
        // The Command holds write ends of the pipe too: without dropping it, no EOF ever.
        self.inner = Command::new("true");
        let mut child = spawned.with_context(|| format!("cannot start `{}`", self.display()))?;
        let mut reader = std::io::BufReader::new(reader);
        let mut buf = Vec::new();
        // Bytes, not lines of UTF-8: a serial console may send anything.
        while std::io::BufRead::read_until(&mut reader, b'\n', &mut buf).unwrap_or(0) > 0 {
            let line = String::from_utf8_lossy(&buf);
            print!("{line}");
            let _ = copy.write_all(line.as_bytes());
            buf.clear();
        }
        let status = child.wait().context("waiting for the command")?;
        self.check(status)
    }

    /// A silent presence check: stdout when the command exists and succeeds, else None.
    /// Not echoed, since the caller reports the result as an `ok:`/`installing:` line.
    pub fn probe(mut self) -> Option<String> {
        let out = self
            .inner
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Replaces xtask with the command, so its exit code and signals need no forwarding.
    /// Returns only on failure.
    pub fn exec(mut self) -> anyhow::Error {
        self.echo();
        let err = self.inner.exec();
        anyhow!(err).context(format!("cannot exec `{}`", self.display()))
    }

    fn check(&self, status: ExitStatus) -> anyhow::Result<()> {
        if status.success() {
            return Ok(());
        }
        // Like a shell: a command killed by signal N counts as 128 + N.
        let code = status
            .code()
            .or_else(|| status.signal().map(|sig| 128 + sig))
            .unwrap_or(1);
        Err(Failed {
            command: self.display(),
            code,
        }
        .into())
    }
}

/// Quotes a word for display only when a shell would need it.
fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("--release"), "--release");
        assert_eq!(quote("/usr/lib/llvm-22"), "/usr/lib/llvm-22");
        assert_eq!(quote("${Status}"), "'${Status}'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn display_shows_env_and_directory() {
        let cmd = Cmd::new("cargo")
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .args(["install", "bpf-linker"])
            .current_dir(&workspace::root().join("netpost-ebpf"));
        assert_eq!(
            cmd.display(),
            "cd netpost-ebpf && LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker"
        );
    }
}
