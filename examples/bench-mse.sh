#!/usr/bin/env bash
# The MSE Diffie-Hellman cost, before and after a change to src/mse: builds
# examples/mse_modexp.rs (release) at BASE and at the working tree, then runs
# the two alternately (base new, new base, ...) so that load on a shared
# machine hits both alike. Each run prints the median microseconds of a
# public key (G^X mod P) and of a shared secret (Y^X mod P).
#
# Usage: examples/bench-mse.sh [--base COMMIT] [--runs N] [--out DIR]
#   --base  the commit to compare with (default c967d34, before the
#           squaring / sliding window / generator table change)
#   --runs  runs per build (default 15)
#   --out   default docs/results/mse-modexp
# Writes DIR/runs.csv, DIR/meta.json and DIR/summary.md (medians, 95 %
# bootstrap intervals, new/base ratios; "faster" only when the intervals do
# not overlap).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3
base=c967d34 runs=15 out=$ROOT/docs/results/mse-modexp
while (($#)); do
    case $1 in
    --base) base=$2; shift ;;
    --runs) runs=$2; shift ;;
    --out) out=$2; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

work=$(mktemp -d /tmp/bt-bench-mse.XXXXXX)
cleanup() {
    git -C "$ROOT" worktree remove --force "$work/base" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The base tree gets this example file (public API only) if it lacks it.
git -C "$ROOT" worktree add --detach "$work/base" "$base" >/dev/null 2>&1
cp "$ROOT/examples/mse_modexp.rs" "$work/base/examples/"
grep -q 'name = "mse_modexp"' "$work/base/Cargo.toml" ||
    printf '\n[[example]]\nname = "mse_modexp"\npath = "examples/mse_modexp.rs"\n' >>"$work/base/Cargo.toml"
log "building base ($base) and new (release)"
(cd "$work/base" && CARGO_TARGET_DIR=$work/target-base nice -n 5 cargo build -q --release --example mse_modexp)
(cd "$ROOT" && nice -n 5 cargo build -q --release --example mse_modexp)
target=${CARGO_TARGET_DIR:-$ROOT/target}
declare -A bin=([base]=$work/target-base/release/examples/mse_modexp [new]=$target/release/examples/mse_modexp)

mkdir -p "$out"
echo "build,run,keygen_us,shared_us" >"$out/runs.csv"
for ((i = 1; i <= runs; i++)); do
    order="base new"
    ((i % 2 == 0)) && order="new base"
    for b in $order; do
        echo "$b,$i,$("${bin[$b]}")" >>"$out/runs.csv"
    done
    log "run $i of $runs"
done

WHEN=$(date -u +%FT%TZ) BASE=$base NEW=$(git -C "$ROOT" rev-parse HEAD) \
    DIRTY=$(git -C "$ROOT" status --porcelain -- src examples | grep -q . && echo true || echo false) \
    CMDLINE="examples/bench-mse.sh --base $base --runs $runs" "$PY" - "$out" <<'PYEOF'
import csv, json, os, platform, random, statistics, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/runs.csv")))
def mtu():
    try:
        return int(open("/sys/class/net/lo/mtu").read())
    except OSError:
        return None
json.dump({
    "base_commit": os.environ["BASE"], "new_commit": os.environ["NEW"],
    "dirty": os.environ["DIRTY"] == "true", "command": os.environ["CMDLINE"],
    "program": "examples/mse_modexp.rs (release), 31 rounds of 20 operations per run, median",
    "nproc": os.cpu_count(), "kernel": platform.release(), "mtu_lo": mtu(),
    "load_average_at_end": " ".join(open("/proc/loadavg").read().split()[:3]),
    "date": os.environ["WHEN"],
}, open(f"{out}/meta.json", "w"), indent=2)
rng = random.Random(1)
def ci(v):
    meds = sorted(statistics.median(rng.choices(v, k=len(v))) for _ in range(10000))
    return meds[250], meds[9749]
lines = ["| operation | base median [95 % CI] µs | new median [95 % CI] µs | new/base | verdict |",
         "| --- | --- | --- | --- | --- |"]
for key, label in [("keygen_us", "public key G^X"), ("shared_us", "shared secret Y^X")]:
    s = {}
    for b in ("base", "new"):
        v = [float(r[key]) for r in rows if r["build"] == b]
        s[b] = (statistics.median(v), *ci(v), len(v))
    (mb, lb, hb, nb), (mn, ln, hn, nn) = s["base"], s["new"]
    verdict = "new faster" if hn < lb else "new slower" if ln > hb else "tie"
    lines.append(f"| {label} | {mb:.1f} [{lb:.1f}, {hb:.1f}] (n={nb}) | {mn:.1f} [{ln:.1f}, {hn:.1f}] (n={nn}) | {mn / mb:.3f} | {verdict} |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
