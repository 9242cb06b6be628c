//! JSON Lines: one snapshot object per line, flushed as it is written so a reader (or a
//! killed netpost) never sees half a line. Schema: docs/json.md.
use std::{
    fs::File,
    io::{self, BufWriter, Write},
};

use super::Sink;
use crate::model::Snapshot;

pub struct JsonLines {
    out: BufWriter<Box<dyn Write + Send>>,
}

impl JsonLines {
    /// `-` is standard output; anything else a file, created or truncated.
    pub fn open(target: &str) -> io::Result<JsonLines> {
        let out: Box<dyn Write + Send> = if target == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(File::create(target)?)
        };
        Ok(JsonLines::new(out))
    }

    pub fn new(out: Box<dyn Write + Send>) -> JsonLines {
        JsonLines {
            out: BufWriter::new(out),
        }
    }
}

impl Sink for JsonLines {
    fn emit(&mut self, snapshot: &Snapshot) -> io::Result<()> {
        // The whole line in one write: a line longer than the BufWriter's 8 KiB would
        // otherwise reach the file in pieces, and a reader could see half of it.
        let mut line = serde_json::to_vec(snapshot)?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        self.out.flush()
    }
}
