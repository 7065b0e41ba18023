//! `sha1sum` on bt's SHA-1: prints `HEX  PATH` for each file (stdin for none
//! or `-`). `--backend` prints the backend in use. Used by bench-sha1.sh.

use std::fs::File;
use std::io::{self, Read, Write};
use std::process::ExitCode;

use bt::sha1::{backend, Sha1};

const CHUNK: usize = 1 << 20;

fn hash(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<[u8; 20]> {
    let mut h = Sha1::new();
    loop {
        match reader.read(buf) {
            Ok(0) => return Ok(h.finalize()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn main() -> ExitCode {
    let mut paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.len() == 1 && paths[0] == "--backend" {
        println!("{}", backend());
        return ExitCode::SUCCESS;
    }
    if paths.is_empty() {
        paths.push("-".to_owned());
    }
    let mut buf = vec![0u8; CHUNK];
    let mut out = io::stdout().lock();
    let mut status = ExitCode::SUCCESS;
    for path in &paths {
        let digest = if path == "-" {
            hash(&mut io::stdin().lock(), &mut buf)
        } else {
            File::open(path).and_then(|mut f| hash(&mut f, &mut buf))
        };
        match digest {
            Ok(d) => {
                let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
                if writeln!(out, "{hex}  {path}").is_err() {
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("sha1sum: {path}: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
