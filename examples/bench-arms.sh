#!/usr/bin/env bash
# Two (or more) arms of bt-fetch side by side: one leecher from one seeder
# (scenario 1 of bench-clients.sh), the arms alternating run by run so that
# drift on a shared machine hits them alike. An arm is either a build or a
# request cap:
#   builds: --old PATH --new PATH  two bt-fetch binaries ("did this change
#           cost speed?"; copy the old binary aside before rebuilding)
#   caps:   --caps LIST            one build, each arm a value of the hidden
#           --x-max-requests (the cap on requests outstanding to one peer)
#
# Usage: sudo examples/bench-arms.sh (--old PATH --new PATH | --caps LIST) [options]
#   --old PATH       the bt-fetch binary before
#   --new PATH       the bt-fetch binary after, or the one build for --caps
#                    (default $BT_FETCH, else target/release/bt-fetch)
#   --caps LIST      request caps to compare, e.g. 256,512 (instead of builds)
#   --reps N         runs per arm and seeder (default 10)
#   --seeders LIST   any bench-clients.sh --seeder kinds, comma-separated
#                    (default libtorrent)
#   --variant V      lo, ns or auto (default): auto is ns for transmission
#                    (it ignores 127.x peers), lo for the others
#   --pieces SIZE    piece size (default 1M)
#   --size MIB       file size (default 1024)
#   --out DIR        results (default target/bench/arms-<timestamp>)
# DIR/runs.csv is bench-clients.sh's per-run CSV with the arm first, in a
# column named `build` (old, new) or `cap` (the cap); DIR/meta.json says
# what ran (bench_meta) and, for builds, each binary's path and sha256.
# The committed docs/results/requests and docs/results/builds were made by
# the two scripts this one replaced (bench-requests.sh, bench-builds.sh):
#   requests: --caps 256,512 --reps 5 --seeders transmission, then
#             --caps 256,512 --reps 10 --seeders libtorrent
#   builds:   --old OLD --new NEW --reps 10 --seeders libtorrent --variant lo
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
old= new=$BT_FETCH caps= reps=10 seeders=libtorrent
variant=auto pieces=1M size=1024 out=
bench_options --old=old --new=new --caps=caps --reps=reps --seeders=seeders --variant=variant \
    --pieces=pieces --size=size --out=out -- "$@"

# The arms: labels, and for each the binary and the extra bt-fetch options.
ARMS=()
declare -A ARM_BIN=() ARM_EXTRA=()
[[ $EUID -eq 0 ]] || die "needs root (bench-clients.sh: network namespaces, tc)"
if [[ -n $caps ]]; then
    [[ -z $old ]] || die "--caps compares caps on one build: give --new (the build), not --old"
    kind=cap
    IFS=, read -ra ARMS <<<"$caps"
    for a in "${ARMS[@]}"; do
        [[ $a =~ ^[0-9]+$ ]] || die "--caps: '$a' is not a number"
        ARM_BIN[$a]=$new ARM_EXTRA[$a]="--x-max-requests $a"
    done
    "$new" --x-max-requests 8 --help >/dev/null 2>&1 ||
        die "$new has no --x-max-requests (build this commit: cargo build --release)"
else
    [[ -n $old ]] || die "give --old and --new (two builds) or --caps LIST (see --help)"
    kind=build
    ARMS=(old new)
    ARM_BIN=([old]=$old [new]=$new) ARM_EXTRA=([old]= [new]=)
    [[ -x $old && -x $new ]] || die "--old and --new must be bt-fetch binaries"
fi
((${#ARMS[@]} >= 2)) || die "at least two arms to compare"
[[ $variant == lo || $variant == ns || $variant == auto ]] || die "--variant: lo, ns or auto"
IFS=, read -ra SEEDERS <<<"$seeders"

OUT=${out:-$ROOT/target/bench/arms-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/runs"
OUT=$(cd "$OUT" && pwd)
BT_FETCH=$new bench_meta before
if [[ $kind == build ]]; then
    OLD=$old NEW=$new "$PY" - "$OUT/meta.json" <<'PYEOF'
import hashlib, json, os, sys
path = sys.argv[1]
meta = json.load(open(path))
def digest(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()[:16]
meta["arms"] = {k: {"path": os.environ[v], "sha256": digest(os.environ[v])} for k, v in (("old", "OLD"), ("new", "NEW"))}
json.dump(meta, open(path, "w"), indent=2)
open(path, "a").write("\n")
PYEOF
fi

header_done=
for seeder in "${SEEDERS[@]}"; do
    v=$variant
    [[ $v == auto ]] && { v=lo; [[ $seeder == transmission ]] && v=ns; }
    for ((rep = 1; rep <= reps; rep++)); do
        for arm in "${ARMS[@]}"; do
            one="$OUT/runs/$seeder-$arm-r$rep"
            BT_FETCH=${ARM_BIN[$arm]} BENCH_EXTRA_bt_fetch=${ARM_EXTRA[$arm]} \
                bash "$here/bench-clients.sh" --scenarios 1 --seeder "$seeder" --clients bt-fetch \
                --variants "$v" --pieces "$pieces" --reps 1 --size "$size" --out "$one" \
                >"$one.log" 2>&1 || log "run $seeder $kind $arm rep $rep failed (see $one.log)"
            [[ -f $one/runs.csv ]] || continue
            [[ -n $header_done ]] || { echo "$kind,$(head -1 "$one/runs.csv")" >"$OUT/runs.csv"; header_done=1; }
            # each run is bench-clients.sh's rep 1: give it this rep's number
            tail -n +2 "$one/runs.csv" | sed "s/^/$arm,/; s/,1,1,/,1,$rep,/" >>"$OUT/runs.csv"
            tail -n 1 "$OUT/runs.csv" >&2
        done
    done
done
bench_meta after
log "results in $OUT"
