//! Keeps stray writes to stderr off the dashboard. While the dashboard owns the terminal,
//! file descriptor 2 points at a private log file (mode 0600, created new); when it hands
//! the terminal back the messages are replayed onto the real stderr, below the restored
//! screen, and the file is removed. A panic puts stderr back first, so its message shows.
use std::{
    fs::{File, OpenOptions},
    io::{self, Read as _, Seek as _, Write},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
        unix::fs::OpenOptionsExt as _,
    },
    path::PathBuf,
    sync::atomic::{AtomicI32, Ordering},
};

/// Replayed in full up to this size; past it the file is kept and named instead.
const REPLAY_MAX: u64 = 64 * 1024;

/// A copy of the real stderr for the panic hook (-1 when not capturing).
static SAVED: AtomicI32 = AtomicI32::new(-1);

pub struct StderrCapture {
    saved: Option<OwnedFd>,
    file: File,
    path: PathBuf,
}

impl StderrCapture {
    pub fn start() -> io::Result<StderrCapture> {
        let path = std::env::temp_dir().join(format!("netpost-{}.log", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        // SAFETY: dup/dup2 on descriptors this process owns; the copy is owned below.
        let saved = unsafe { libc::dup(2) };
        if saved < 0 {
            let _ = std::fs::remove_file(&path);
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `saved` is a fresh descriptor nothing else owns.
        let saved = unsafe { OwnedFd::from_raw_fd(saved) };
        // SAFETY: as above.
        if unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
            let _ = std::fs::remove_file(&path);
            return Err(io::Error::last_os_error());
        }
        SAVED.store(saved.as_raw_fd(), Ordering::SeqCst);
        install_panic_hook();
        Ok(StderrCapture {
            saved: Some(saved),
            file,
            path,
        })
    }

    /// Puts stderr back and replays what was written meanwhile into `out`.
    pub fn finish(mut self, out: &mut dyn Write) {
        self.restore(out);
    }

    fn restore(&mut self, out: &mut dyn Write) {
        let Some(saved) = self.saved.take() else {
            return;
        };
        SAVED.store(-1, Ordering::SeqCst);
        restore_fd(saved.as_raw_fd());
        drop(saved);
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > REPLAY_MAX {
            let _ = writeln!(
                out,
                "netpost: {len} bytes of messages while the dashboard was open: {}",
                self.path.display()
            );
            return;
        }
        let mut text = Vec::new();
        if self.file.rewind().is_ok() && self.file.read_to_end(&mut text).is_ok() {
            let _ = out.write_all(&text);
            let _ = out.flush();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for StderrCapture {
    fn drop(&mut self) {
        self.restore(&mut io::stderr());
    }
}

fn restore_fd(saved: RawFd) {
    // SAFETY: dup2 of a descriptor that stays open for the call.
    unsafe { libc::dup2(saved, 2) };
}

/// Runs before the hooks installed earlier (ratatui's, the default printer), so a panic
/// message reaches the terminal rather than the log file.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let saved = SAVED.swap(-1, Ordering::SeqCst);
        if saved >= 0 {
            restore_fd(saved);
        }
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_to_stderr_are_held_back_and_replayed() {
        let capture = StderrCapture::start().unwrap();
        let path = capture.path.clone();
        let msg = b"netpost-test: a stray message\n";
        // SAFETY: writing a valid buffer to fd 2, as a library would.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        assert!(
            std::fs::read(&path).unwrap().ends_with(msg),
            "went to the file"
        );
        let mut replay = Vec::new();
        capture.finish(&mut replay);
        assert_eq!(replay, msg);
        assert!(!path.exists(), "log file removed");
    }
}
