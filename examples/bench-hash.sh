#!/usr/bin/env bash
# Hashing speed: `bt-meta create` and `bt-verify` side by side with
# `mktorrent -t 2` and `mktorrent -t 1` on the same 1 GiB file, warm page
# cache, same piece length, no creation date. Optionally also the programs of
# other builds (say main's), so a before/after lands in the same run.
#
#   examples/bench-hash.sh [--dry-run] [RESULTS_DIR] [LABEL=BINDIR ...]
#
#   RESULTS_DIR     where raw results go (default target/bench/hash)
#   LABEL=BINDIR    also time BINDIR/bt-meta create and BINDIR/bt-verify,
#                   named "LABEL bt-meta create" and "LABEL bt-verify"
#
#   BT_BENCH_DIR    where the test file lives (default /tmp/bt-bench); reused
#                   while its size is right
#   BT_BENCH_MB     file size in MiB (default 1024)
#   BT_BENCH_ROUNDS rounds (default 15); each round runs every command once,
#                   in a fresh random order, so background load hits every
#                   command alike (hyperfine alone runs them one after another)
#   BT_BENCH_PIECE  piece length, a power of two in bytes (default 524288)
#
# Writes RESULTS_DIR/runs.csv (one row per run: round, position in the
# round, command, wall/user/system seconds, exit code, 1-minute load),
# RESULTS_DIR/hyperfine/round-NN.json (hyperfine's own export),
# RESULTS_DIR/summary.csv and summary.txt (the table printed) and
# RESULTS_DIR/meta.json (commits, command line, nproc, kernel, date, load).
# Prints medians (wall and CPU time) with 95% bootstrap intervals and ratios
# against `mktorrent -t 2`: "faster"/"slower" only where the intervals of
# the medians do not overlap, "tie" otherwise.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"

cmdline="$0 $*"
bench_options --positional -- "$@"
set -- "${BENCH_POSITIONAL[@]}"
root=$ROOT
results=${1:-$root/target/bench/hash}
[[ $# -gt 0 ]] && shift
dir=${BT_BENCH_DIR:-/tmp/bt-bench}
mb=${BT_BENCH_MB:-1024}
rounds=${BT_BENCH_ROUNDS:-15}
piece=${BT_BENCH_PIECE:-524288}

bench_need "apt-get install hyperfine mktorrent python3 git" hyperfine mktorrent python3 git
log2=$(python3 -c "import sys; n=int(sys.argv[1]); print(n.bit_length()-1 if n > 0 and n & (n-1) == 0 else '')" "$piece")
[[ -n $log2 ]] || {
    echo "bench-hash: BT_BENCH_PIECE must be a power of two (mktorrent takes 2^n)" >&2
    exit 2
}

(cd "$root" && cargo build --release --bin bt-meta --bin bt-verify)

# Builds to time: ours first, then LABEL=BINDIR arguments.
labels=("")
bindirs=("$(bench_release_dir)")
for arg in "$@"; do
    [[ $arg == *=* ]] || {
        echo "bench-hash: expected LABEL=BINDIR, got '$arg'" >&2
        exit 2
    }
    labels+=("${arg%%=*}")
    bindirs+=("$(cd "${arg#*=}" && pwd)")
done
for d in "${bindirs[@]}"; do bench_need_built "$d/bt-meta" "$d/bt-verify"; done

mkdir -p "$dir" "$results/hyperfine"
results=$(cd "$results" && pwd)
rm -f "$results"/hyperfine/round-*.json
file=$dir/hash-bench-${mb}MiB.bin
bytes=$((mb * 1024 * 1024))
bench_random_file "$file" "$bytes"
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-hash.XXXXXX")
trap 'rm -rf "$work"' EXIT
torrent=$work/verify.torrent
bin=${bindirs[0]}
"$bin/bt-meta" create "$file" -l "$piece" --no-date -q -o "$torrent" >/dev/null
# Warm the cache, and check that everyone makes the same torrent.
cat "$file" >/dev/null
mktorrent -d -t 2 -l "$log2" -o "$work/mk.torrent" "$file" >/dev/null
ours_hash=$("$bin/bt-meta" info "$torrent" | sed -n 's/.*"info_hash":"\([0-9a-f]*\)".*/\1/p')
mk_hash=$("$bin/bt-meta" info "$work/mk.torrent" | sed -n 's/.*"info_hash":"\([0-9a-f]*\)".*/\1/p')
[[ $ours_hash == "$mk_hash" ]] || {
    echo "bench-hash: info-hash differs from mktorrent's: $ours_hash vs $mk_hash" >&2
    exit 1
}
for d in "${bindirs[@]}"; do
    "$d/bt-verify" -q "$torrent" -d "$dir" >/dev/null || {
        echo "bench-hash: $d/bt-verify does not find the data complete" >&2
        exit 1
    }
done

# name <TAB> command; the commands run without a shell (hyperfine -N).
commands=(
    "mktorrent -t 2	mktorrent -d -t 2 -l $log2 -o $work/mk.torrent $file"
    "mktorrent -t 1	mktorrent -d -t 1 -l $log2 -o $work/mk.torrent $file"
)
for i in "${!bindirs[@]}"; do
    name=${labels[$i]:+${labels[$i]} }
    commands+=(
        "${name}bt-meta create	${bindirs[$i]}/bt-meta create $file -l $piece --no-date -q -f -o $work/bt.torrent"
        "${name}bt-verify	${bindirs[$i]}/bt-verify -q $torrent -d $dir"
    )
done

load() { cut -d' ' -f1 /proc/loadavg; }
load_start=$(cat /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
printf 'round\tposition\tcommand\tload1\n' >"$work/order.tsv"
# Round 0 is a warm-up and is not kept.
for ((r = 0; r <= rounds; r++)); do
    mapfile -t order < <(printf '%s\n' "${commands[@]}" | shuf)
    args=()
    for c in "${order[@]}"; do
        args+=(-n "${c%%	*}" "${c#*	}")
    done
    out=$results/hyperfine/round-$(printf %02d "$r").json
    l=$(load)
    hyperfine -N -r 1 --style none --prepare "rm -f $work/mk.torrent" \
        --export-json "$out" "${args[@]}" >/dev/null
    if ((r == 0)); then
        rm -f "$out"
        continue
    fi
    for ((p = 0; p < ${#order[@]}; p++)); do
        printf '%d\t%d\t%s\t%s\n' "$r" "$((p + 1))" "${order[$p]%%	*}" "$l" >>"$work/order.tsv"
    done
    printf '\rround %d/%d (load %s)' "$r" "$rounds" "$l" >&2
done
echo >&2
load_end=$(cat /proc/loadavg)

commit_of() {
    git -C "$1" rev-parse HEAD 2>/dev/null || echo unknown
}
dirty_of() {
    [[ -n $(git -C "$1" status --porcelain --untracked-files=no 2>/dev/null) ]] && echo true || echo false
}
builds_json=$(
    for i in "${!bindirs[@]}"; do
        printf '%s\t%s\t%s\t%s\n' "${labels[$i]:-(this build)}" "${bindirs[$i]}" \
            "$(commit_of "${bindirs[$i]}")" "$(dirty_of "${bindirs[$i]}")"
    done
)

BUILDS=$builds_json CMDLINE=$cmdline FILE=$file BYTES=$bytes PIECE=$piece ROUNDS=$rounds \
    LOAD_START=$load_start LOAD_END=$load_end STARTED=$started ROOT=$root \
    python3 - "$results" "$work/order.tsv" "${commands[@]}" <<'EOF'
import csv, glob, json, os, platform, random, statistics, subprocess, sys

results, order_file, commands = sys.argv[1], sys.argv[2], sys.argv[3:]
names = [c.split("\t", 1)[0] for c in commands]
env = os.environ

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""

order = {}
with open(order_file) as f:
    for row in csv.DictReader(f, delimiter="\t"):
        order[(int(row["round"]), row["command"])] = (int(row["position"]), float(row["load1"]))

runs = []
for path in sorted(glob.glob(os.path.join(results, "hyperfine", "round-*.json"))):
    r = int(os.path.basename(path)[6:8])
    for res in json.load(open(path))["results"]:
        pos, load1 = order[(r, res["command"])]
        runs.append(dict(round=r, position=pos, command=res["command"],
                         wall_s=res["times"][0], user_s=res["user"], system_s=res["system"],
                         exit_code=res["exit_codes"][0], load1=load1))
runs.sort(key=lambda x: (x["round"], x["position"]))
with open(os.path.join(results, "runs.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(runs[0]))
    w.writeheader()
    w.writerows(runs)

rng = random.Random(1)
B = 10000
def boot_medians(xs):
    return sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(B))
def ci(sorted_stats):
    return sorted_stats[int(0.025 * B)], sorted_stats[int(0.975 * B) - 1]

wall = {n: [x["wall_s"] for x in runs if x["command"] == n] for n in names}
cpu = {n: [x["user_s"] + x["system_s"] for x in runs if x["command"] == n] for n in names}
boot = {n: boot_medians(wall[n]) for n in names}
base = "mktorrent -t 2"
summary = []
lines = []
lines.append(f"{env['FILE']}: {int(env['BYTES']) >> 20} MiB, pieces of {int(env['PIECE']) >> 10} KiB, "
             f"{os.cpu_count()} cores, {env['ROUNDS']} interleaved rounds, "
             f"load {env['LOAD_START'].split()[0]} -> {env['LOAD_END'].split()[0]}")
lines.append(f"{'command':<24} {'median s':>8} {'95% CI':>13} {'min':>6} {'max':>6} "
             f"{'cpu s':>6} {'95% CI':>13} {'ratio':>6} {'95% CI':>13}  vs {base}")
for n in names:
    med = statistics.median(wall[n])
    lo, hi = ci(boot[n])
    clo, chi = ci(boot_medians(cpu[n]))
    ratios = sorted(a / b for a, b in zip(boot[n], rng.sample(boot[base], B)))
    rlo, rhi = ci(ratios)
    blo, bhi = ci(boot[base])
    if n == base:
        verdict = ""
    elif hi < blo:
        verdict = "faster"
    elif lo > bhi:
        verdict = "slower"
    else:
        verdict = "tie"
    ratio = med / statistics.median(wall[base])
    cmed = statistics.median(cpu[n])
    lines.append(f"{n:<24} {med:8.3f} {lo:6.3f}-{hi:<6.3f} {min(wall[n]):6.3f} {max(wall[n]):6.3f} "
                 f"{cmed:6.3f} {clo:6.3f}-{chi:<6.3f} {ratio:6.3f} {rlo:6.3f}-{rhi:<6.3f}  {verdict}")
    summary.append(dict(command=n, runs=len(wall[n]), median_s=round(med, 4),
                        ci95_lo_s=round(lo, 4), ci95_hi_s=round(hi, 4),
                        min_s=round(min(wall[n]), 4), max_s=round(max(wall[n]), 4),
                        median_cpu_s=round(cmed, 4),
                        cpu_ci95_lo_s=round(clo, 4), cpu_ci95_hi_s=round(chi, 4),
                        ratio_vs_mktorrent_t2=round(ratio, 4),
                        ratio_ci95_lo=round(rlo, 4), ratio_ci95_hi=round(rhi, 4),
                        verdict_vs_mktorrent_t2=verdict))
lines.append("wall seconds: median of the runs, 95% bootstrap interval of the median, min, max;")
lines.append("cpu s: user + system seconds; ratio: median wall / median wall of " + base + ";")
lines.append("faster/slower only where the intervals of the two medians do not overlap.")
print("\n".join(lines))
with open(os.path.join(results, "summary.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
with open(os.path.join(results, "summary.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(summary[0]))
    w.writeheader()
    w.writerows(summary)

builds = []
for line in env["BUILDS"].splitlines():
    label, bindir, commit, dirty = line.split("\t")
    builds.append(dict(label=label, bindir=bindir, commit=commit, dirty=dirty == "true"))
meta = dict(
    commit=sh("git", "-C", env["ROOT"], "rev-parse", "HEAD"),
    builds=builds,
    command_line=env["CMDLINE"],
    commands={c.split("\t", 1)[0]: c.split("\t", 1)[1] for c in commands},
    nproc=os.cpu_count(),
    cpu=next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), ""),
    kernel=platform.uname().release,
    uname=" ".join(platform.uname()),
    date_start=env["STARTED"],
    date_end=sh("date", "-u", "+%Y-%m-%dT%H:%M:%SZ"),
    loadavg_start=env["LOAD_START"],
    loadavg_end=env["LOAD_END"],
    file=env["FILE"], bytes=int(env["BYTES"]), piece_length=int(env["PIECE"]),
    rounds=int(env["ROUNDS"]),
    hyperfine=sh("hyperfine", "--version"),
    mktorrent=(sh("sh", "-c", "mktorrent -h 2>&1 | head -1")),
    rustc=sh("rustc", "--version"),
)
json.dump(meta, open(os.path.join(results, "meta.json"), "w"), indent=2)
print(f"raw results in {results}")
EOF
