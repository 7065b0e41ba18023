//! bt-meta: read torrents as JSON, and create them.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;

use bt::cli::{self, Verbosity};
use bt::create::{self, CreateOptions};
use bt::exit;
use bt::metainfo::Metainfo;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bt-meta",
    version,
    about = "Read torrents as JSON, and create them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    verbosity: Verbosity,
}

#[derive(Subcommand)]
enum Command {
    /// Print one JSON object per torrent (JSON lines for several).
    Info {
        /// Torrent files or magnet links; `-` reads one torrent from stdin.
        #[arg(required = true)]
        files: Vec<String>,
        /// Add the piece hashes (hex) as "pieces".
        #[arg(long)]
        pieces: bool,
        /// Refuse torrents that are not canonical bencode (keys out of order or
        /// repeated, bytes after the top-level dictionary).
        #[arg(long)]
        strict: bool,
        /// Indent the JSON (one torrent per object, no longer JSON lines).
        #[arg(long)]
        pretty: bool,
    },
    /// Make a torrent of a file or a folder.
    Create {
        /// The file or folder to share.
        path: PathBuf,
        /// Tracker URL; repeat for more tiers; commas separate trackers of one tier.
        #[arg(short, long = "announce", value_name = "URL[,URL...]")]
        announce: Vec<String>,
        /// Where to write the torrent (`-` for stdout); default NAME.torrent here.
        #[arg(short, long, value_name = "OUT")]
        output: Option<String>,
        /// Overwrite an existing output file.
        #[arg(short, long)]
        force: bool,
        /// Piece length in bytes (units K, M allowed); default chosen from the size.
        #[arg(short = 'l', long, value_parser = cli::parse_size, value_name = "SIZE")]
        piece_length: Option<u64>,
        /// Mark the torrent private (BEP 27).
        #[arg(short, long)]
        private: bool,
        #[arg(short, long)]
        comment: Option<String>,
        /// Leave out the creation date, for reproducible output.
        #[arg(long)]
        no_date: bool,
        /// The "created by" field.
        #[arg(long, default_value = concat!("bt/", env!("CARGO_PKG_VERSION")))]
        created_by: String,
        /// Leave out "created by".
        #[arg(long, conflicts_with = "created_by")]
        no_created_by: bool,
        /// Web seed URL (BEP 19); repeatable.
        #[arg(short, long = "web-seed", value_name = "URL")]
        web_seed: Vec<String>,
        /// Name of the torrent (default: the file or folder name).
        #[arg(short, long)]
        name: Option<String>,
        /// Hashing threads (default: one per core).
        #[arg(short, long)]
        threads: Option<usize>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.verbosity.init_logging("bt-meta");
    let code = match cli.command {
        Command::Info {
            files,
            pieces,
            strict,
            pretty,
        } => info(&files, pieces, strict, pretty),
        Command::Create {
            path,
            announce,
            output,
            force,
            piece_length,
            private,
            comment,
            no_date,
            created_by,
            no_created_by,
            web_seed,
            name,
            threads,
        } => {
            let options = CreateOptions {
                trackers: announce
                    .iter()
                    .map(|tier| {
                        tier.split(',')
                            .map(str::trim)
                            .filter(|u| !u.is_empty())
                            .map(String::from)
                            .collect::<Vec<_>>()
                    })
                    .filter(|t| !t.is_empty())
                    .collect(),
                piece_length,
                private,
                comment,
                created_by: (!no_created_by).then_some(created_by),
                creation_date: (!no_date).then(now_epoch),
                url_list: web_seed,
                name,
                threads: threads.unwrap_or_else(bt::hashing::default_threads),
            };
            create(&path, &options, output, force, cli.verbosity.quiet == 0)
        }
    };
    ExitCode::from(code as u8)
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn print_json(value: &serde_json::Value, pretty: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if pretty {
        serde_json::to_writer_pretty(&mut out, value)?;
    } else {
        serde_json::to_writer(&mut out, value)?;
    }
    out.write_all(b"\n")?;
    out.flush()
}

fn info(files: &[String], pieces: bool, strict: bool, pretty: bool) -> i32 {
    let mut code = exit::OK;
    for path in files {
        if bt::magnet::is_magnet(path) {
            match bt::magnet::Magnet::parse(path) {
                Ok(m) => {
                    let mut json = m.to_json();
                    json["source"] = "magnet".into();
                    if print_json(&json, pretty).is_err() {
                        return exit::OK;
                    }
                }
                Err(e) => {
                    log::error!("magnet link: {e}");
                    code = code.max(exit::INVALID_INPUT);
                }
            }
            continue;
        }
        match cli::load_torrent(path, strict) {
            Ok(meta) => {
                let mut json = meta.to_json(pieces);
                json["source"] = path.as_str().into();
                if print_json(&json, pretty).is_err() {
                    // stdout closed (e.g. `| head`): nothing more to say.
                    return exit::OK;
                }
            }
            Err(e) => {
                log::error!("{e}");
                code = code.max(e.exit_code());
            }
        }
    }
    code
}

fn create(
    path: &std::path::Path,
    options: &CreateOptions,
    output: Option<String>,
    force: bool,
    show_progress: bool,
) -> i32 {
    let total = match create::list_files(path) {
        Ok((_, files, _)) => files.iter().map(|f| f.length).sum(),
        Err(e) => {
            log::error!("{e}");
            return exit::FAILURE;
        }
    };
    let done = AtomicU64::new(0);
    let bytes = match cli::with_progress("hashing", total, &done, show_progress, || {
        create::create_torrent(path, options, &done)
    }) {
        Ok(b) => b,
        Err(e) => {
            log::error!("{e}");
            return exit::FAILURE;
        }
    };
    // Read back what we made: it validates names given by the user too.
    let meta = match Metainfo::from_bytes(&bytes) {
        Ok(m) => m,
        Err(e) => {
            log::error!("the torrent made is invalid: {e}");
            return exit::INVALID_INPUT;
        }
    };
    let output = output.unwrap_or_else(|| format!("{}.torrent", meta.info.name_lossy()));
    if output == "-" {
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(&bytes).and_then(|_| out.flush()) {
            log::error!("writing the torrent to stdout: {e}");
            return exit::FAILURE;
        }
        return exit::OK;
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true);
    if force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let written = open.open(&output).and_then(|mut f| f.write_all(&bytes));
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            log::error!("{output}: already exists (use --force to overwrite)");
        } else {
            log::error!("{output}: {e}");
        }
        return exit::FAILURE;
    }
    log::info!("wrote {output}");
    let mut json = meta.to_json(false);
    json["source"] = output.into();
    let _ = print_json(&json, false);
    exit::OK
}
