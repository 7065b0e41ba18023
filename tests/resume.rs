//! The resume file of bt-fetch: a restart after a partial download trusts
//! it (no recheck) when the files are as it recorded them, and rechecks
//! when a file changed, when `--recheck` is given or when the resume file
//! is damaged. Which one happened is the `listening` event's `resume`
//! ("trusted" or "checked") and `resume_reason`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::peers::*;

const LIMIT: Duration = Duration::from_secs(120);
const SIZE: usize = 16 << 20;
const PIECE: u64 = 256 << 10;

struct Setup {
    _tmp: common::TempDir,
    data: PathBuf,
    torrent: String,
    out: PathBuf,
    seeder: Fetch,
    peer: String,
}

/// A seeder limited to 4 MiB/s and a leecher stopped (SIGTERM, a clean
/// exit) once it has at least 8 pieces, leaving a partial download and
/// its resume file.
fn partial(label: &str) -> Setup {
    let tmp = temp(label);
    let data = single_file(&tmp.join("seed"), "data.bin", SIZE, 7);
    let torrent = make_torrent(&data, &tmp.join("x.torrent"), "256K");
    let t = torrent.to_str().unwrap().to_string();
    let mut seeder = Fetch::seeder(&t, &tmp.join("seed"), &["--max-upload-rate", "4M"]);
    let peer = format!("127.0.0.1:{}", seeder.port());
    let out = tmp.join("leech");
    let mut leech = Fetch::local("leecher 1", &t, out.to_str().unwrap(), &["--peer", &peer]);
    let first = leech.wait_event("listening", LIMIT);
    assert_eq!(first["resume"], "checked");
    assert_eq!(first["resume_reason"], "absent");
    for _ in 0..200 {
        if leech.events_named("piece").len() >= 8 {
            break;
        }
        leech.pump(Duration::from_millis(50));
    }
    assert!(leech.events_named("piece").len() >= 8, "no pieces came");
    leech.proc.signal(libc::SIGTERM);
    let done = leech.wait_event("done", LIMIT);
    assert!(leech.proc.wait_exit(Duration::from_secs(10)).is_some());
    assert!(
        done["downloaded"].as_u64().unwrap() < SIZE as u64,
        "stopped too late: {done}"
    );
    Setup {
        _tmp: tmp,
        data,
        torrent: t,
        out,
        seeder,
        peer,
    }
}

fn resume_file(out: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".bt-resume"))
        .collect();
    assert_eq!(files.len(), 1, "one resume file in {}", out.display());
    files[0].clone()
}

/// Restarts the leecher; returns its `listening` and `done` events and
/// checks the data.
fn restart(s: &mut Setup, extra: &[&str]) -> (serde_json::Value, serde_json::Value, String) {
    let mut args = vec!["--peer", s.peer.as_str()];
    args.extend_from_slice(extra);
    let mut leech = Fetch::local("leecher 2", &s.torrent, s.out.to_str().unwrap(), &args);
    let listening = leech.wait_event("listening", LIMIT);
    let done = leech.finish(LIMIT);
    assert_same(&s.data, &s.out.join("data.bin"));
    (listening, done, leech.stderr_text())
}

fn stop(mut s: Setup) {
    s.seeder.proc.signal(libc::SIGTERM);
    s.seeder.finish(Duration::from_secs(10));
}

#[test]
fn restart_trusts_a_matching_resume_file() {
    let mut s = partial("resume-trusted");
    let (listening, done, _) = restart(&mut s, &["-v"]);
    assert_eq!(listening["resume"], "trusted", "{listening}");
    assert!(listening["resume_reason"].is_null());
    let have = listening["have_pieces"].as_u64().unwrap();
    assert!(have >= 8, "{listening}");
    // Only the missing pieces were fetched again.
    let downloaded = done["downloaded"].as_u64().unwrap();
    assert_eq!(downloaded, SIZE as u64 - have * PIECE, "{done}");
    // The resume file now says every piece is there: a third run trusts it
    // and fetches nothing.
    let (listening, done, _) = restart(&mut s, &[]);
    assert_eq!(listening["resume"], "trusted");
    assert_eq!(listening["have_pieces"], listening["pieces"]);
    assert_eq!(done["downloaded"], 0);
    stop(s);
}

#[test]
fn a_file_modified_after_exit_forces_a_recheck() {
    let mut s = partial("resume-modified");
    // Damage the first piece (written: pieces come in order from a single
    // seeder only loosely, so find one the resume file vouches for).
    let bytes = std::fs::read(resume_file(&s.out)).unwrap();
    let state = bt::resume::decode(&bytes).unwrap();
    let good = state.have.ones().next().expect("a written piece");
    let path = s.out.join("data.bin");
    let mut content = std::fs::read(&path).unwrap();
    content[good * PIECE as usize + 5] ^= 0xff;
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, &content).unwrap();
    let (listening, done, err) = restart(&mut s, &["-v"]);
    assert_eq!(listening["resume"], "checked", "{listening}");
    assert_eq!(listening["resume_reason"], "file_changed");
    assert!(err.contains("changed since the resume file"), "{err}");
    // The damaged piece was found and fetched again (pieces written after
    // the last save may be found besides); the data is right.
    let have = listening["have_pieces"].as_u64().unwrap();
    assert!(have as usize >= state.have.count() - 1, "{listening}");
    assert!(have < SIZE as u64 / PIECE, "{listening}");
    assert_eq!(done["downloaded"], SIZE as u64 - have * PIECE);
    stop(s);
}

#[test]
fn recheck_flag_forces_a_recheck() {
    let mut s = partial("resume-forced");
    let (listening, _, _) = restart(&mut s, &["--recheck"]);
    assert_eq!(listening["resume"], "checked");
    assert_eq!(listening["resume_reason"], "forced");
    assert!(listening["have_pieces"].as_u64().unwrap() >= 8);
    stop(s);
}

#[test]
fn a_damaged_resume_file_is_ignored_with_a_warning() {
    let mut s = partial("resume-garbled");
    let rf = resume_file(&s.out);
    let mut bytes = std::fs::read(&rf).unwrap();
    bytes.truncate(bytes.len() / 2);
    bytes.extend_from_slice(b"\xff\x00garbage");
    std::fs::write(&rf, &bytes).unwrap();
    let (listening, _, err) = restart(&mut s, &[]);
    assert_eq!(listening["resume"], "checked");
    assert_eq!(listening["resume_reason"], "garbled");
    assert!(listening["have_pieces"].as_u64().unwrap() >= 8);
    assert!(err.contains("is damaged"), "{err}");
    // Rewritten whole at the end of the run.
    let state = bt::resume::decode(&std::fs::read(&rf).unwrap()).unwrap();
    assert!(state.have.is_full());
    stop(s);
}
