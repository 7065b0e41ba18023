//! The world a program runs in, as values: its arguments, stdin, stdout,
//! stderr and working folder. `bin/*` build one from the process; tests
//! build one from buffers and a temporary folder and call the same `run`
//! functions in-process (intermodal's `Env` pattern).

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use log::LevelFilter;

use crate::exit;

/// Where a program's stdout or stderr goes.
pub enum Sink {
    /// The process's own stream.
    Stdout,
    Stderr,
    /// Collected in memory (tests).
    Buffer(Vec<u8>),
    /// Collected in memory and shared with the logger: a test Env's stderr,
    /// where the library's `log::` lines of the Env's thread land too.
    Shared(Arc<Mutex<Vec<u8>>>),
    /// Every write fails with `BrokenPipe`, like a pipe whose reader left.
    Closed,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout => io::stdout().lock().write(buf),
            Sink::Stderr => io::stderr().lock().write(buf),
            Sink::Buffer(b) => b.write(buf),
            Sink::Shared(b) => lock(b).write(buf),
            Sink::Closed => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            // One locked write per call keeps lines whole between threads.
            Sink::Stdout => io::stdout().lock().write_all(buf),
            Sink::Stderr => io::stderr().lock().write_all(buf),
            Sink::Buffer(b) => b.write_all(buf),
            Sink::Shared(b) => lock(b).write_all(buf),
            Sink::Closed => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => io::stdout().lock().flush(),
            Sink::Stderr => io::stderr().lock().flush(),
            Sink::Buffer(_) | Sink::Shared(_) => Ok(()),
            Sink::Closed => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

/// A shared buffer, whether or not a thread panicked while holding it (a
/// test's output is still worth reading).
fn lock(buffer: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    buffer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a program's stdin comes from.
pub enum Source {
    Stdin,
    Bytes(io::Cursor<Vec<u8>>),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Stdin => io::stdin().lock().read(buf),
            Source::Bytes(c) => c.read(buf),
        }
    }
}

/// Stdout could not be written: the reader went away or the disk is full.
/// Carries the OS error for the one-line message.
#[derive(Debug)]
pub struct OutputLost(pub io::Error);

pub struct Env {
    /// The arguments, the program name first.
    pub args: Vec<OsString>,
    /// Relative paths are taken from here (empty: the process's folder).
    pub dir: PathBuf,
    pub stdin: Source,
    pub stdout: Sink,
    pub stderr: Sink,
    pub stdout_is_tty: bool,
    pub stdin_is_tty: bool,
    /// Whether this is the real process: then the global logger is
    /// installed and progress lines may be drawn on a terminal.
    pub process: bool,
    program: &'static str,
    level: LevelFilter,
}

fn is_tty(fd: libc::c_int) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

impl Env {
    /// The environment of this process.
    pub fn process(program: &'static str) -> Env {
        Env {
            args: std::env::args_os().collect(),
            dir: PathBuf::new(),
            stdin: Source::Stdin,
            stdout: Sink::Stdout,
            stderr: Sink::Stderr,
            stdout_is_tty: is_tty(libc::STDOUT_FILENO),
            stdin_is_tty: is_tty(libc::STDIN_FILENO),
            process: true,
            program,
            level: LevelFilter::Warn,
        }
    }

    /// An environment for tests: `args` (without the program name), empty
    /// stdin, buffered stdout and stderr (the library's log lines of this
    /// thread included, once the program has set its verbosity), relative
    /// paths under `dir`.
    pub fn test<I, S>(program: &'static str, dir: &Path, args: I) -> Env
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut all = vec![OsString::from(program)];
        all.extend(args.into_iter().map(Into::into));
        Env {
            args: all,
            dir: dir.to_path_buf(),
            stdin: Source::Bytes(io::Cursor::new(Vec::new())),
            stdout: Sink::Buffer(Vec::new()),
            stderr: Sink::Shared(Arc::default()),
            stdout_is_tty: false,
            stdin_is_tty: false,
            process: false,
            program,
            level: LevelFilter::Warn,
        }
    }

    pub fn program(&self) -> &'static str {
        self.program
    }

    /// What was written to stdout (tests).
    pub fn out(&self) -> &[u8] {
        match &self.stdout {
            Sink::Buffer(b) => b,
            _ => &[],
        }
    }

    /// What was written to stderr, as text (tests).
    pub fn err(&self) -> String {
        match &self.stderr {
            Sink::Buffer(b) => String::from_utf8_lossy(b).into_owned(),
            Sink::Shared(b) => String::from_utf8_lossy(&lock(b)).into_owned(),
            _ => String::new(),
        }
    }

    /// Sets the message level from `-v`/`-q` (and `BT_LOG`), and routes the
    /// library's log lines to this Env's stderr: the process's logger for
    /// the real process, a capture of this thread's lines for a test Env.
    pub fn set_verbosity(&mut self, verbose: u8, quiet: u8) {
        self.level = crate::logging::effective_level(verbose, quiet);
        if self.process {
            crate::logging::init(self.program, self.level);
        } else if let Sink::Shared(sink) = &self.stderr {
            crate::logging::capture(self.program, self.level, Arc::clone(sink));
        }
    }

    pub fn level(&self) -> LevelFilter {
        self.level
    }

    /// A path given on the command line, taken relative to the working folder.
    pub fn path(&self, given: impl AsRef<Path>) -> PathBuf {
        self.dir.join(given)
    }

    fn message(&mut self, level: LevelFilter, prefix: &str, text: &str) {
        if self.level < level {
            return;
        }
        let line = format!("{}: {prefix}{text}\n", self.program);
        if matches!(self.stderr, Sink::Stderr) {
            // Clears a drawn progress line first, as the logger does.
            crate::progress::with_line_cleared(|| {
                let _ = io::stderr().lock().write_all(line.as_bytes());
            });
        } else {
            let _ = self.stderr.write_all(line.as_bytes());
        }
    }

    pub fn error(&mut self, text: impl std::fmt::Display) {
        self.message(LevelFilter::Error, "error: ", &text.to_string());
    }

    pub fn warn(&mut self, text: impl std::fmt::Display) {
        self.message(LevelFilter::Warn, "warning: ", &text.to_string());
    }

    pub fn info(&mut self, text: impl std::fmt::Display) {
        self.message(LevelFilter::Info, "", &text.to_string());
    }

    /// Logs a usage error and returns its exit code (2).
    pub fn usage(&mut self, text: impl std::fmt::Display) -> i32 {
        self.error(text);
        exit::USAGE
    }

    /// Writes `bytes` to stdout and flushes.
    pub fn write_out(&mut self, bytes: &[u8]) -> Result<(), OutputLost> {
        self.stdout
            .write_all(bytes)
            .and_then(|_| self.stdout.flush())
            .map_err(OutputLost)
    }

    /// Writes one JSON value as a line (or indented) to stdout.
    pub fn print_json(
        &mut self,
        value: &serde_json::Value,
        pretty: bool,
    ) -> Result<(), OutputLost> {
        let mut text = if pretty {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        }
        .map_err(|e| OutputLost(io::Error::other(e)))?;
        text.push('\n');
        self.write_out(text.as_bytes())
    }

    /// The one way every program ends when its stdout is lost: one line on
    /// stderr (a warning, so `-q` silences it) and [`exit::OUTPUT_LOST`].
    pub fn output_lost(&mut self, lost: OutputLost) -> i32 {
        let OutputLost(e) = lost;
        if e.kind() == io::ErrorKind::BrokenPipe {
            self.warn("stdout closed by its reader; output lost");
        } else {
            self.error(format_args!("writing to stdout: {e}"));
        }
        exit::OUTPUT_LOST
    }

    /// The start every program shares: parses the arguments into `T`, sets
    /// the verbosity from its `-v`/`-q` flags, then runs `program`. Returns
    /// `program`'s exit code, or [`Env::parse`]'s when parsing stops the run.
    pub fn run_program<T: clap::Parser>(
        &mut self,
        verbosity: impl FnOnce(&T) -> super::Verbosity,
        program: impl FnOnce(&mut Env, T) -> i32,
    ) -> i32 {
        let cli: T = match self.parse() {
            Ok(c) => c,
            Err(code) => return code,
        };
        let flags = verbosity(&cli);
        self.set_verbosity(flags.verbose, flags.quiet);
        program(self, cli)
    }

    /// Parses the arguments with clap. `Err` carries the exit code when
    /// the program should stop: 0 after `--help`/`--version` (printed on
    /// stdout), 2 after a usage error (printed on stderr).
    pub fn parse<T: clap::Parser>(&mut self) -> Result<T, i32> {
        match T::try_parse_from(&self.args) {
            Ok(t) => Ok(t),
            Err(e) => {
                let text = e.render().to_string();
                if e.use_stderr() {
                    let _ = self.stderr.write_all(text.as_bytes());
                    Err(exit::USAGE)
                } else {
                    match self.write_out(text.as_bytes()) {
                        Ok(()) => Err(exit::OK),
                        Err(lost) => Err(self.output_lost(lost)),
                    }
                }
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Sink::Shared(sink) = &self.stderr {
            crate::logging::end_capture(sink);
        }
    }
}

/// Runs a program's `run` with this process's environment and exits with
/// its code.
pub fn main(program: &'static str, run: fn(&mut Env) -> i32) -> ! {
    let mut env = Env::process(program);
    let code = run(&mut env);
    std::process::exit(code)
}
