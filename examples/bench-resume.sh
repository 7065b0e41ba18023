#!/bin/sh
# Restart time of bt-fetch with and without its resume file, on a SIZE MiB
# torrent (default 1024, 256 KiB pieces), fully and half downloaded (the
# second half a hole, as bt-fetch leaves unwritten space), and half
# downloaded after a `kill -9` (state `killed`: a bt-fetch killed right
# after its start save, then the data file's mtime moved as the killed
# run's later writes would have moved it; the restart trusts the half in
# the resume file and hashes the rest, `resume` "partial").
#
#   examples/bench-resume.sh [SIZE_MIB] [RUNS] [COLD_RUNS] [OUTDIR]
#
# Restart time: from launching `bt-fetch --seed` (no peers, stdin
# /dev/null) to its `listening` event, i.e. the whole setup including the
# recheck or the resume file's check; then SIGTERM. Modes, interleaved in
# random order within each round: `resume` (the resume file matches: no
# recheck) and `recheck` (`--recheck`: a full recheck as before). RUNS
# rounds (default 7) warm; COLD_RUNS rounds (default 3, full download only)
# after `sync; echo 3 > /proc/sys/vm/drop_caches` (root; it slows everyone
# on the machine, so few). Writes runs.csv, meta.json and summary.md into
# OUTDIR (default docs/results/resume), medians with 95 % bootstrap CIs
# and the recheck/resume ratio.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-1024}
runs=${2:-7}
cold=${3:-3}
outdir=${4:-$root/docs/results/resume}
(cd "$root" && nice cargo build -q --bin bt-fetch --bin bt-meta) >&2
mkdir -p "$outdir"
exec python3 - "$root" "$size_mib" "$runs" "$cold" "$outdir" "$0 $*" <<'EOF'
import csv, json, os, random, signal, statistics, subprocess, sys, tempfile, time

root, size_mib, runs, cold, outdir, command = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
bt_fetch = os.path.join(root, "target/debug/bt-fetch")
bt_meta = os.path.join(root, "target/debug/bt-meta")
work = tempfile.mkdtemp(prefix="bt-bench-resume.")
size = size_mib << 20
rng = random.Random(int(time.time()))

def log(*a):
    print(*a, file=sys.stderr, flush=True)

def loadavg():
    return open("/proc/loadavg").read().split()[0]

# Data, torrent, and two output folders: full and half (a hole after the
# first half, as bt-fetch leaves unwritten space).
full = os.path.join(work, "full")
half = os.path.join(work, "half")
killed = os.path.join(work, "killed")
os.makedirs(full); os.makedirs(half); os.makedirs(killed)
with open(os.path.join(full, "data.bin"), "wb") as f:
    left = size
    while left:
        n = min(left, 16 << 20)
        f.write(os.urandom(n)); left -= n
torrent = os.path.join(work, "x.torrent")
subprocess.run([bt_meta, "create", "-q", "--no-date", "-l", "256K", "-o", torrent,
                os.path.join(full, "data.bin")], check=True, stdout=subprocess.DEVNULL)
subprocess.run(["cp", "--sparse=always", os.path.join(full, "data.bin"), os.path.join(half, "data.bin")], check=True)
subprocess.run(["fallocate", "-p", "-o", str(size // 2), "-l", str(size - size // 2),
                os.path.join(half, "data.bin")], check=True)
subprocess.run(["cp", "--sparse=always", os.path.join(half, "data.bin"), os.path.join(killed, "data.bin")], check=True)

def restart(folder, recheck):
    """Seconds from launch to the listening event, and that event."""
    args = [bt_fetch, torrent, "-o", folder, "--seed", "--bind", "127.0.0.1", "--json", "-q"]
    if recheck:
        args.append("--recheck")
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    event = None
    deadline = t0 + 600
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        v = json.loads(line)
        if v.get("event") == "listening":
            event = v
            break
    seconds = time.monotonic() - t0
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill(); p.wait()
    if event is None:
        raise SystemExit("bt-fetch did not start: " + p.stderr.read()[-2000:])
    return seconds, event

def kill_after_start(folder):
    """Leaves `folder` as a kill -9 mid-download does: the resume file of a
    running bt-fetch (not clean), then a later write of ours (the mtime)."""
    p = subprocess.Popen([bt_fetch, torrent, "-o", folder, "--seed", "--bind", "127.0.0.1", "--json", "-q"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line or json.loads(line).get("event") == "listening":
            break
    time.sleep(0.2)  # the start save comes right after listening
    p.kill(); p.wait()
    os.utime(os.path.join(folder, "data.bin"))

# Prime: a first run writes the resume files (and warms the cache).
for folder in (full, half, killed):
    restart(folder, True)

def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")

rows = []
loads = [loadavg()]
plan = [("warm", state) for _ in range(runs) for state in ("full", "half", "killed")]
plan += [("cold", "full") for _ in range(cold)]
for i, (cache, state) in enumerate(plan):
    folder = {"full": full, "half": half, "killed": killed}[state]
    modes = ["resume", "recheck"]
    rng.shuffle(modes)
    for mode in modes:
        if state == "killed":
            kill_after_start(folder)
        if cache == "cold":
            drop_caches()
        s, ev = restart(folder, mode == "recheck")
        want = "checked" if mode == "recheck" else ("partial" if state == "killed" else "trusted")
        status = "ok" if ev.get("resume") == want else "unexpected:" + str(ev.get("resume_reason"))
        rows.append({"round": i, "cache": cache, "state": state, "mode": mode,
                     "seconds": round(s, 4), "have_pieces": ev["have_pieces"],
                     "pieces": ev["pieces"], "resume": ev.get("resume"),
                     "rechecked_pieces": ev.get("rechecked_pieces"), "status": status,
                     "load": loadavg()})
        log(f"{cache} {state} {mode}: {s:.3f} s ({ev.get('resume')}, {ev['have_pieces']}/{ev['pieces']} pieces)")
loads.append(loadavg())

with open(os.path.join(outdir, "runs.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader(); w.writerows(rows)

def ci(values, r, n=10000):
    meds = sorted(statistics.median(r.choices(values, k=len(values))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]

def ratio_ci(a, b, r, n=10000):
    rs = sorted(statistics.median(r.choices(a, k=len(a))) / statistics.median(r.choices(b, k=len(b))) for _ in range(n))
    return rs[int(0.025 * n)], rs[int(0.975 * n) - 1]

r = random.Random(1)
out = ["| cache | state | mode | runs | median s [95 % CI] | recheck/resume [95 % CI] | verdict |",
       "| --- | --- | --- | --- | --- | --- | --- |"]
for cache, state in [("warm", "full"), ("warm", "half"), ("warm", "killed"), ("cold", "full")]:
    v = {m: [x["seconds"] for x in rows if x["cache"] == cache and x["state"] == state and x["mode"] == m and x["status"] == "ok"] for m in ("resume", "recheck")}
    if not v["resume"] or not v["recheck"]:
        continue
    c = {m: ci(v[m], r) for m in v}
    lo, hi = ratio_ci(v["recheck"], v["resume"], r)
    verdict = "resume faster" if c["resume"][1] < c["recheck"][0] else ("recheck faster" if c["recheck"][1] < c["resume"][0] else "tie")
    ratio = statistics.median(v["recheck"]) / statistics.median(v["resume"])
    for m in ("resume", "recheck"):
        med = statistics.median(v[m])
        out.append(f"| {cache} | {state} | {m} | {len(v[m])} | {med:.3f} [{c[m][0]:.3f}–{c[m][1]:.3f}] | "
                   + (f"{ratio:.1f} [{lo:.1f}–{hi:.1f}] | {verdict} |" if m == "recheck" else "| |"))
summary = "\n".join(out)
print(summary)
with open(os.path.join(outdir, "summary.md"), "w") as f:
    f.write(summary + "\n")

def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()

meta = {
    "experiment": "resume: bt-fetch restart time with the resume file vs --recheck",
    "commit": sh(f"git -C {root} rev-parse HEAD"),
    "dirty": bool(sh(f"git -C {root} status --porcelain --untracked-files=no")),
    "command": command,
    "size_bytes": size, "piece_length": 262144, "warm_rounds": runs, "cold_rounds": cold,
    "build": "dev profile (opt-level as in Cargo.toml)",
    "machine": {"nproc": os.cpu_count(), "kernel": sh("uname -r"),
                "mtu_lo": sh("cat /sys/class/net/lo/mtu"),
                "filesystem": sh(f"df -T {work} | tail -1 | awk '{{print $2}}'"),
                "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()},
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "load_start_end": loads,
}
with open(os.path.join(outdir, "meta.json"), "w") as f:
    json.dump(meta, f, indent=2); f.write("\n")
subprocess.run(["rm", "-rf", work])
EOF
