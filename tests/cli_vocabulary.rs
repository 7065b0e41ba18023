//! One vocabulary across the programs: walks every program's command line
//! (the clap `Command` the library builds, which is what `--help` prints)
//! and checks that a flag means the same thing wherever it appears.

use std::collections::BTreeMap;

use clap::{Arg, ArgAction, Command, CommandFactory};

/// Every program and subcommand that takes flags, by name.
fn programs() -> Vec<(String, Command)> {
    let mut all = Vec::new();
    let meta = bt::cli::meta::Cli::command();
    for sub in meta.get_subcommands() {
        all.push((format!("bt-meta {}", sub.get_name()), sub.clone()));
    }
    all.push(("bt-meta".into(), meta));
    all.push(("bt-verify".into(), bt::cli::verify::Cli::command()));
    all.push(("bt-announce".into(), bt::cli::announce::Cli::command()));
    all.push(("bt-fetch".into(), bt::cli::fetch::Cli::command()));
    all.push(("bt-sim".into(), bt::cli::sim::Cli::command()));
    for (_, cmd) in &mut all {
        cmd.build();
    }
    all
}

/// The one long name with two meanings, on purpose: `bt-sim --seed K` (the
/// random seed; the simulator's interface of issue 11, which scripts and
/// the strategy experiments call) against `bt-fetch --seed` (keep seeding;
/// bt-fetch's random seed is the hidden `--rng-seed`). bt-sim is not part of
/// the fetch pipeline, so no script passes one program's flags to the other.
fn known_clash(program: &str, long: &str) -> bool {
    program == "bt-sim" && long == "seed"
}

fn flags(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments()
        .filter(|a| !a.is_positional() && a.get_id() != "help" && a.get_id() != "version")
}

fn takes_value(a: &Arg) -> bool {
    matches!(a.get_action(), ArgAction::Set | ArgAction::Append)
}

/// How a flag shows in `--help`: long name, short letter, value name.
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    long: Option<String>,
    short: Option<char>,
    value: Option<String>,
}

fn shape(a: &Arg) -> Shape {
    Shape {
        long: a.get_long().map(String::from),
        short: a.get_short(),
        value: takes_value(a).then(|| {
            a.get_value_names()
                .map(|v| {
                    v.iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_else(|| a.get_id().to_string().to_uppercase())
        }),
    }
}

#[test]
fn a_short_letter_means_one_long_flag_everywhere() {
    // letter -> (long name, where)
    let mut seen: BTreeMap<char, (String, String)> = BTreeMap::new();
    let mut problems = Vec::new();
    for (program, cmd) in programs() {
        for a in flags(&cmd).filter(|a| !a.is_hide_set()) {
            let Some(short) = a.get_short() else { continue };
            let long = a.get_long().unwrap_or("").to_string();
            match seen.get(&short) {
                Some((other, at)) if *other != long => problems.push(format!(
                    "-{short} is --{long} in {program} but --{other} in {at}"
                )),
                Some(_) => {}
                None => {
                    seen.insert(short, (long, program.clone()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The decisions of issue 13, spelled out.
    for (letter, long) in [
        ('t', "tracker"),
        ('p', "port"),
        ('o', "output"),
        ('j', "threads"),
        ('v', "verbose"),
        ('q', "quiet"),
        ('w', "web-seed"),
    ] {
        assert_eq!(
            seen.get(&letter).map(|s| s.0.as_str()),
            Some(long),
            "-{letter}"
        );
    }
}

#[test]
fn a_long_flag_has_one_short_letter_and_one_value_name_everywhere() {
    let mut seen: BTreeMap<String, (Shape, String)> = BTreeMap::new();
    let mut problems = Vec::new();
    for (program, cmd) in programs() {
        for a in flags(&cmd).filter(|a| !a.is_hide_set()) {
            let s = shape(a);
            let Some(long) = s.long.clone() else { continue };
            if known_clash(&program, &long) {
                continue;
            }
            match seen.get(&long) {
                Some((other, at)) => {
                    if other.short != s.short {
                        problems.push(format!(
                            "--{long}: short {:?} in {program} but {:?} in {at}",
                            s.short, other.short
                        ));
                    }
                    // --output is where a program's result goes: the torrent
                    // FILE of `create`, the data DIR of bt-fetch/bt-verify.
                    if other.value != s.value && long != "output" {
                        problems.push(format!(
                            "--{long}: value {:?} in {program} but {:?} in {at}",
                            s.value, other.value
                        ));
                    }
                }
                None => {
                    seen.insert(long, (s, program.clone()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    for (long, value) in [
        ("timeout", "DURATION"),
        ("port", "PORT"),
        ("tracker", "URL"),
        ("peer-id", "ID"),
        ("numwant", "N"),
        ("ca-file", "PEM"),
        ("threads", "N"),
    ] {
        let got = seen.get(long).and_then(|(s, _)| s.value.clone());
        assert_eq!(got.as_deref(), Some(value), "--{long}");
    }
}

/// Old spellings are kept as hidden aliases for scripts; none of them may
/// be a visible flag of another meaning in any program.
#[test]
fn hidden_aliases_do_not_clash_with_visible_flags() {
    let all = programs();
    let mut visible_long: BTreeMap<String, String> = BTreeMap::new();
    let mut visible_short: BTreeMap<char, String> = BTreeMap::new();
    for (_, cmd) in &all {
        for a in flags(cmd).filter(|a| !a.is_hide_set()) {
            let id = a.get_id().to_string();
            if let Some(l) = a.get_long() {
                visible_long.insert(l.to_string(), id.clone());
            }
            if let Some(s) = a.get_short() {
                visible_short.insert(s, id);
            }
        }
    }
    let mut aliases = Vec::new();
    for (program, cmd) in &all {
        for a in flags(cmd) {
            for alias in a.get_all_aliases().unwrap_or_default() {
                aliases.push(format!("--{alias}"));
                if let Some(id) = visible_long.get(alias) {
                    assert_eq!(
                        id,
                        a.get_id(),
                        "{program}: hidden --{alias} is visible as {id} elsewhere"
                    );
                }
            }
            for alias in a.get_all_short_aliases().unwrap_or_default() {
                assert!(
                    !visible_short.contains_key(&alias),
                    "{program}: hidden -{alias} is a visible flag elsewhere"
                );
                aliases.push(format!("-{alias}"));
            }
        }
    }
    aliases.sort();
    assert_eq!(aliases, ["--dir", "--listen", "-a", "-d"]);
}

/// What a flag is: the setting it fills (its field, singular: `web_seed`
/// and `web_seeds` are one setting, repeatable or not), and whether it
/// takes a value.
fn meaning(a: &Arg) -> String {
    let id = a.get_id().as_str();
    let setting = id.strip_suffix('s').unwrap_or(id);
    let kind = if takes_value(a) {
        "takes a value"
    } else {
        "a switch"
    };
    format!("{setting} ({kind})")
}

/// A long name means one thing in every program, counting hidden flags and
/// hidden aliases: a script that learnt `--name` in one program must not
/// get another behaviour from it in the next (as `bt-meta create --announce
/// URL` did against `bt-fetch --announce`).
#[test]
fn a_long_name_has_one_meaning_everywhere_hidden_ones_too() {
    let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut problems = Vec::new();
    for (program, cmd) in programs() {
        for a in flags(&cmd) {
            let names = a
                .get_long()
                .into_iter()
                .chain(a.get_all_aliases().unwrap_or_default());
            for long in names.filter(|l| !known_clash(&program, l)) {
                let here = (meaning(a), program.clone());
                match seen.get(long) {
                    Some((other, at)) if *other != here.0 => problems.push(format!(
                        "--{long} is {} in {program} but {other} in {at}",
                        here.0
                    )),
                    Some(_) => {}
                    None => {
                        seen.insert(long.to_string(), here);
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // the clash this test was written for
    assert_eq!(
        seen.get("announce").map(|s| s.0.as_str()),
        Some("announce (a switch)")
    );
}

/// Likewise a short letter, hidden ones (short aliases) included.
#[test]
fn a_short_letter_has_one_meaning_everywhere_hidden_ones_too() {
    let mut seen: BTreeMap<char, (String, String)> = BTreeMap::new();
    let mut problems = Vec::new();
    for (program, cmd) in programs() {
        for a in flags(&cmd) {
            let letters = a
                .get_short()
                .into_iter()
                .chain(a.get_all_short_aliases().unwrap_or_default());
            for letter in letters {
                let here = (meaning(a), program.clone());
                match seen.get(&letter) {
                    Some((other, at)) if *other != here.0 => problems.push(format!(
                        "-{letter} is {} in {program} but {other} in {at}",
                        here.0
                    )),
                    Some(_) => {}
                    None => {
                        seen.insert(letter, here);
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_flag_has_help_and_sizes_name_their_units() {
    let mut problems = Vec::new();
    for (program, cmd) in programs() {
        for a in flags(&cmd).filter(|a| !a.is_hide_set()) {
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            let name = a.get_long().unwrap_or(a.get_id().as_str()).to_string();
            if help.trim().is_empty() {
                problems.push(format!("{program} --{name}: no help text"));
            }
            let value = shape(a).value.unwrap_or_default();
            if (value == "SIZE" || value == "RATE") && !help.contains("K, M, G") {
                problems.push(format!("{program} --{name}: units not 'K, M, G': {help}"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_help_documents_the_exit_codes_and_bt_log() {
    for (program, mut cmd) in programs() {
        let help = cmd.render_long_help().to_string();
        let mut needles = vec!["Exit status:", "0 ", "2 usage error", "BT_LOG", "141"];
        // bt-sim reads no torrent and no file but its capacity CDF (a usage
        // error when bad); the others fail on I/O and bad input too
        if program != "bt-sim" {
            needles.extend(["1 ", "3 invalid"]);
        }
        for needle in needles {
            assert!(
                help.contains(needle),
                "{program} --help lacks {needle:?}:\n{help}"
            );
        }
        if program == "bt-verify" {
            assert!(
                help.contains("4 incomplete") && help.contains("5 corrupt"),
                "{help}"
            );
        }
        if program == "bt-fetch" {
            assert!(help.contains("6 a local file"), "{help}");
        }
    }
}

/// The pipeline `bt-announce x.torrent | bt-fetch x.torrent` agrees on our
/// port by default.
#[test]
fn bt_announce_and_bt_fetch_share_the_default_port() {
    let announce = bt::cli::announce::Cli::command();
    let port = announce
        .get_arguments()
        .find(|a| a.get_long() == Some("port"))
        .expect("bt-announce --port");
    let default: Vec<String> = port
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    assert_eq!(default, [bt::cli::fetch::DEFAULT_PORT.to_string()]);
    let fetch = bt::cli::fetch::Cli::command();
    let help = fetch
        .get_arguments()
        .find(|a| a.get_long() == Some("port"))
        .and_then(|a| a.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    assert!(help.contains("6881"), "{help}");
}

/// The names scripts and the strategy experiments give bt-sim (issue 11);
/// the walk above may only reshape their help, never rename them.
#[test]
fn bt_sim_keeps_its_script_facing_names() {
    let sim = bt::cli::sim::Cli::command();
    let longs: Vec<&str> = flags(&sim).filter_map(|a| a.get_long()).collect();
    for name in [
        "peers",
        "seeders",
        "size",
        "piece-length",
        "strategy-mix",
        "capacity-dist",
        "arrival",
        "seed",
        "json",
        "verbose",
        "quiet",
    ] {
        assert!(longs.contains(&name), "bt-sim --{name} is gone: {longs:?}");
    }
}
