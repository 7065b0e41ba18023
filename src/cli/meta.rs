//! bt-meta: read torrents as JSON (or text), and create them.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use clap::{Parser, Subcommand};

use super::values::{parse_count, parse_piece_length, parse_tracker_tier};
use super::{Env, Verbosity};
use crate::create::{self, CreateOptions, FileFilter};
use crate::exit;
use crate::metainfo::Metainfo;

/// The end of every bt-meta `--help`, its subcommands' included.
macro_rules! exit_codes {
    () => {
        concat!(
            "Exit status: 0 done; 1 failure (I/O); 2 usage error (unknown flag, bad value); ",
            "3 invalid input (a torrent or magnet link that cannot be read); ",
            "141 stdout lost (closed by its reader).\n",
            "Set BT_LOG=debug (or info, trace) to see more on stderr."
        )
    };
}

#[derive(Parser, Debug)]
#[command(
    name = "bt-meta",
    version,
    about = "Read torrents as JSON (or text), and create them",
    after_help = exit_codes!()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub verbosity: Verbosity,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print one JSON object per torrent (JSON lines for several), or a
    /// summary for people with --text.
    #[command(after_help = exit_codes!())]
    Info {
        /// Torrent files or magnet links; `-` reads one torrent from stdin.
        #[arg(required = true)]
        files: Vec<String>,
        /// Add the piece hashes (hex) as "pieces".
        #[arg(long, conflicts_with = "text")]
        pieces: bool,
        /// Refuse torrents that are not canonical bencode (keys out of order or
        /// repeated, bytes after the top-level dictionary).
        #[arg(long)]
        strict: bool,
        /// Indent the JSON (one torrent per object, no longer JSON lines).
        #[arg(long, conflicts_with = "text")]
        pretty: bool,
        /// A summary for people (like transmission-show) instead of JSON.
        #[arg(long)]
        text: bool,
    },
    /// Make a torrent of a file or a folder.
    #[command(after_help = exit_codes!())]
    Create(Box<CreateArgs>),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The file or folder to share.
    pub path: PathBuf,
    /// Tracker URL (http, https or udp); repeat for more tiers; commas
    /// separate trackers of one tier.
    // `-a` is the old spelling, kept hidden for scripts; the old long
    // `--announce URL` is gone: bt-fetch's `--announce` is a switch of
    // another meaning, and a long name has one meaning in every program.
    #[arg(short = 't', long = "tracker", value_name = "URL",
          short_alias = 'a', value_parser = parse_tracker_tier)]
    pub trackers: Vec<Vec<String>>,
    /// Where to write the torrent (`-` for stdout, never a terminal);
    /// default NAME.torrent here.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<String>,
    /// Overwrite an existing output file.
    #[arg(short, long)]
    pub force: bool,
    /// Piece length: a power of two from 16K to 1G (units K, M, G);
    /// default chosen from the size.
    #[arg(short = 'l', long, value_parser = parse_piece_length, value_name = "SIZE")]
    pub piece_length: Option<u64>,
    /// Mark the torrent private (BEP 27): peers only from its trackers.
    #[arg(long)]
    pub private: bool,
    /// Source tag (info.source) asked for by private trackers; it changes
    /// the info-hash.
    #[arg(long, value_name = "TAG")]
    pub source: Option<String>,
    /// A free-text comment stored in the torrent.
    #[arg(short, long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Leave out the creation date, for reproducible output.
    #[arg(long)]
    pub no_date: bool,
    /// The "created by" field.
    #[arg(long, value_name = "TEXT", default_value = concat!("bt/", env!("CARGO_PKG_VERSION")))]
    pub created_by: String,
    /// Leave out "created by".
    #[arg(long, conflicts_with = "created_by")]
    pub no_created_by: bool,
    /// Web seed URL (BEP 19); repeatable.
    #[arg(short, long = "web-seed", value_name = "URL")]
    pub web_seed: Vec<String>,
    /// Name of the torrent (default: the file or folder name); one path
    /// component.
    #[arg(short, long, value_parser = parse_name)]
    pub name: Option<String>,
    /// Leave out files and folders matching this glob (`*`, `?`, `[...]`),
    /// tried on the path under the folder and on each name; repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Keep files and folders whose name starts with a dot (left out by default).
    #[arg(long)]
    pub include_hidden: bool,
    /// Print the piece length and count (JSON), hash nothing, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Hashing threads (default: one per core).
    #[arg(short = 'j', long, value_name = "N", value_parser = parse_count)]
    pub threads: Option<usize>,
}

/// A torrent name given with `--name`: one non-empty path component.
fn parse_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text == "." || text == ".." || text.contains('/') || text.contains('\0') {
        return Err(format!(
            "'{text}': a name is one file or folder name (no '/', not '.' or '..')"
        ));
    }
    Ok(text.to_string())
}

/// `bt-meta` in `env`; returns the exit code.
pub fn run(env: &mut Env) -> i32 {
    env.run_program(|cli: &Cli| cli.verbosity, run_parsed)
}

fn run_parsed(env: &mut Env, cli: Cli) -> i32 {
    let quiet = cli.verbosity.quiet > 0;
    match cli.command {
        Command::Info {
            files,
            pieces,
            strict,
            pretty,
            text,
        } => info(env, &files, pieces, strict, pretty, text),
        Command::Create(args) => create(env, *args, !quiet),
    }
}

fn info(
    env: &mut Env,
    files: &[String],
    pieces: bool,
    strict: bool,
    pretty: bool,
    text: bool,
) -> i32 {
    let mut code = exit::OK;
    for path in files {
        let printed = if crate::magnet::is_magnet(path) {
            match crate::magnet::Magnet::parse(path) {
                Ok(m) => {
                    let mut json = m.to_json();
                    json["source"] = "magnet".into();
                    if text {
                        env.write_out(magnet_text(&json).as_bytes())
                    } else {
                        env.print_json(&json, pretty)
                    }
                }
                Err(e) => {
                    env.error(format_args!("magnet link: {e}"));
                    code = code.max(exit::INVALID_INPUT);
                    continue;
                }
            }
        } else {
            match super::load_torrent_in(env, path, strict) {
                Ok(meta) => {
                    if text {
                        env.write_out(torrent_text(&meta, path).as_bytes())
                    } else {
                        let mut json = meta.to_json(pieces);
                        json["source"] = path.as_str().into();
                        json["source_tag"] = info_source(&meta).into();
                        env.print_json(&json, pretty)
                    }
                }
                Err(e) => {
                    env.error(&e);
                    code = code.max(e.exit_code());
                    continue;
                }
            }
        };
        if let Err(lost) = printed {
            return env.output_lost(lost);
        }
    }
    code
}

/// `info.source` if the info dictionary has one (read from its bytes, as
/// the parsed form has no use for it).
fn info_source(meta: &Metainfo) -> Option<String> {
    let doc = crate::bencode::Decoder::new()
        .decode(&meta.info_bytes)
        .ok()?;
    let tag = doc.root.get("source")?.as_bytes()?;
    Some(String::from_utf8_lossy(tag).into_owned())
}

/// A size for people, with the exact byte count when it is rounded.
fn size_text(bytes: u64) -> String {
    let short = crate::progress::bytes(bytes);
    if bytes < 1024 {
        short
    } else {
        format!("{short} ({bytes} bytes)")
    }
}

/// The `--text` summary of a torrent, laid out like transmission-show.
pub fn torrent_text(meta: &Metainfo, path: &str) -> String {
    use std::fmt::Write as _;
    let info = &meta.info;
    let mut t = String::new();
    let _ = writeln!(t, "NAME\n  {}\n", info.name_lossy());
    let _ = writeln!(t, "GENERAL\n");
    let _ = writeln!(t, "  File: {path}");
    let _ = writeln!(t, "  Name: {}", info.name_lossy());
    let _ = writeln!(t, "  Hash: {}", meta.info_hash_hex());
    let _ = writeln!(
        t,
        "  Created by: {}",
        meta.created_by.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        t,
        "  Created on: {}",
        meta.creation_date
            .map_or("-".to_string(), crate::time::iso8601_utc)
    );
    if let Some(c) = &meta.comment {
        let _ = writeln!(t, "  Comment: {c}");
    }
    let _ = writeln!(
        t,
        "  Piece count: {}\n  Piece size: {}",
        info.piece_count(),
        crate::progress::bytes(info.piece_length)
    );
    let _ = writeln!(t, "  Total size: {}", size_text(info.total_length));
    let _ = writeln!(
        t,
        "  Privacy: {}",
        if info.private {
            "Private torrent"
        } else {
            "Public torrent"
        }
    );
    if let Some(tag) = info_source(meta) {
        let _ = writeln!(t, "  Source: {tag}");
    }
    let _ = writeln!(t, "  Magnet: {}", meta.magnet());
    let _ = writeln!(t, "\nTRACKERS");
    for (i, tier) in meta.trackers.iter().enumerate() {
        let _ = writeln!(t, "\n  Tier #{}", i + 1);
        for url in tier {
            let _ = writeln!(t, "  {url}");
        }
    }
    if !meta.url_list.is_empty() {
        let _ = writeln!(t, "\nWEBSEEDS\n");
        for url in &meta.url_list {
            let _ = writeln!(t, "  {url}");
        }
    }
    let _ = writeln!(t, "\nFILES\n");
    for (_, f) in info.user_files() {
        let _ = writeln!(
            t,
            "  {} ({})",
            f.display_path(),
            crate::progress::bytes(f.length)
        );
    }
    for w in &meta.warnings {
        let _ = writeln!(t, "\nWarning: {w}");
    }
    t.push('\n');
    t
}

/// The `--text` summary of a magnet link (from its JSON form).
fn magnet_text(json: &serde_json::Value) -> String {
    let mut t = String::from("MAGNET\n\n");
    for (key, label) in [("info_hash", "Hash"), ("name", "Name")] {
        if let Some(v) = json.get(key).and_then(|v| v.as_str()) {
            t.push_str(&format!("  {label}: {v}\n"));
        }
    }
    for (key, label) in [("trackers", "Tracker"), ("peers", "Peer")] {
        for v in json
            .get(key)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let text = v.as_str().map_or_else(|| v.to_string(), String::from);
            t.push_str(&format!("  {label}: {text}\n"));
        }
    }
    t.push('\n');
    t
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn create(env: &mut Env, args: CreateArgs, show_progress: bool) -> i32 {
    let writes_stdout = args.output.as_deref() == Some("-");
    if writes_stdout && env.stdout_is_tty && !args.dry_run {
        return env.usage(
            "-o -: stdout is a terminal, and a torrent is binary; \
             redirect it (bt-meta create DATA -o - > x.torrent) or give -o FILE",
        );
    }
    let path = env.path(&args.path);
    let options = CreateOptions {
        trackers: args.trackers,
        piece_length: args.piece_length,
        private: args.private,
        comment: args.comment,
        created_by: (!args.no_created_by).then_some(args.created_by),
        creation_date: (!args.no_date).then(now_epoch),
        url_list: args.web_seed,
        name: args.name,
        threads: args.threads.unwrap_or_else(crate::hashing::default_threads),
        source: args.source,
        filter: FileFilter {
            exclude: args.exclude,
            include_hidden: args.include_hidden,
        },
    };
    let (name, files, multi_file) = match create::list_files(&path, &options.filter) {
        Ok(listed) => listed,
        Err(e) => {
            env.error(&e);
            return exit::FAILURE;
        }
    };
    let total: u64 = files.iter().map(|f| f.length).sum();
    if args.dry_run {
        let piece_length = options
            .piece_length
            .unwrap_or_else(|| create::auto_piece_length(total));
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| String::from_utf8_lossy(&name).into_owned());
        let json = serde_json::json!({
            "name": name,
            "piece_length": piece_length,
            "piece_count": total.div_ceil(piece_length),
            "total_length": total,
            "multi_file": multi_file,
            "file_count": files.len(),
            "files": files.iter().map(|f| serde_json::json!({
                "path_string": f.display_path(),
                "length": f.length,
            })).collect::<Vec<_>>(),
            "dry_run": true,
        });
        return match env.print_json(&json, false) {
            Ok(()) => exit::OK,
            Err(lost) => env.output_lost(lost),
        };
    }
    let done = AtomicU64::new(0);
    let show = show_progress && env.process;
    let made = super::with_progress("hashing", total, &done, show, || {
        create::create_torrent(&path, &options, &done)
    });
    let bytes = match made {
        Ok(b) => b,
        Err(e) => {
            env.error(&e);
            return exit::FAILURE;
        }
    };
    // Read back what we made: it validates names given by the user too.
    let meta = match Metainfo::from_bytes(&bytes) {
        Ok(m) => m,
        Err(e) => {
            env.error(format_args!("the torrent made is invalid: {e}"));
            return exit::INVALID_INPUT;
        }
    };
    let output = args
        .output
        .unwrap_or_else(|| format!("{}.torrent", meta.info.name_lossy()));
    if writes_stdout {
        return match env.write_out(&bytes) {
            Ok(()) => exit::OK,
            Err(lost) => env.output_lost(lost),
        };
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true);
    if args.force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let written = open.open(env.path(&output)).and_then(|mut f| {
        use std::io::Write as _;
        f.write_all(&bytes)
    });
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            env.error(format_args!(
                "{output}: already exists (use --force to overwrite)"
            ));
        } else {
            env.error(format_args!("{output}: {e}"));
        }
        return exit::FAILURE;
    }
    env.info(format_args!("wrote {output}"));
    let mut json = meta.to_json(false);
    json["source"] = output.into();
    match env.print_json(&json, false) {
        Ok(()) => exit::OK,
        Err(lost) => env.output_lost(lost),
    }
}
