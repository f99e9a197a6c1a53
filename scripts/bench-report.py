#!/usr/bin/env python3
"""Writes docs/benchmarks.md (to stdout) from the results folder of one run of scripts/bench.sh:
the run's facts, the ratios and differences below, one table per BenchmarkDotNet class found in
the results (a new class gets its table with no change here), the interleaved rounds, the
per-launch medians, the JIT's code, the native harness, then docs/benchmarks-about.md as it is.
With NATIVE_LIBRARY (what bench.sh benchmarked) the run's facts are read from the snapshots
bench.sh took and saved to RESULTS/run.json, from which the page renders again without it.
usage: bench-report.py RESULTS [NATIVE_LIBRARY]"""
import csv, glob, json, os, platform, re, statistics, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Median time of A over B, with the target (None: for reference). Bytes: A's allocation minus B's.
RATIOS = [("DirectWrite", "PInvokeUpdate", 0.25), ("DirectWrite", "PInvokeUpdateSuppressGCTransition", 0.5),
          ("DirectWrite", "RawStores", 2.0), ("DirectWrite", "RawStoresThreadStatic", None),
          ("ActivityStartStopTracked", "ActivityStartStop", 1.15), ("AsyncFlowTracked", "AsyncFlow", None),
          ("RequestThreadContext", "Request", 1.02), ("ThreadContext", "Off", 1.02), ("OffControl", "Off", None),
          ("Floor", "Off", None)]
# Allocation goals: A's bytes minus B's, at most the limit.
BYTES = [("ThreadContext", "Off", 140, "`AddThreadContext` per request over sockets"),
         ("ActivityStartStopTracked", "ActivityStartStopLocalOnly", 0, "the tracker's own work per span")]
# Where the time goes: A − B in median ns and in allocated bytes, and what the difference is.
DIFFS = [("RawStoresThreadStatic", "RawStores", "finding the thread's record through a `[ThreadStatic]`"),
         ("DirectWrite", "RawStoresThreadStatic", "the valid-flag protocol and the call's shape"),
         ("DirectWriteFullFence", "DirectWrite", "two full fences instead of `Volatile` ordering"),
         ("PInvokeUpdate", "PInvokeUpdateSuppressGCTransition", "the GC transition of a normal P/Invoke"),
         ("DirectWriteActivityIds", "DirectWrite", "Activity ids (hex strings) to bytes"),
         ("ActivityStartStopTracked", "ActivityStartStop", "tracking, per start/stop pair (two switches)"),
         ("ActivityStartStopLocalOnly", "ActivityStartStop", "of which the notifying `AsyncLocal` alone"),
         ("AsyncFlowTracked", "AsyncFlow", "tracking, per async flow"),
         ("ThreadContext", "Off", "`AddThreadContext`, per request over sockets"),
         ("Floor", "Off", "of which the notifying `AsyncLocal` alone")]
BUSY_SHARE = 0.05  # other processes' share of the CPU time from which the run counts as busy


def read(*parts):
    paths = sorted(glob.glob(os.path.join(*parts)))
    return open(paths[-1], errors="replace").read() if paths else ""


def output(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout.rstrip()


def number(text):
    """A CSV cell: '1,234.5' -> 1234.5; '-' (BenchmarkDotNet's zero) -> 0; 'NA', '?', '' -> None."""
    text = text.strip()
    return None if text in ("", "NA", "?") else 0.0 if text == "-" else float(text.replace(",", ""))


def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def table(header, rows, left=1):
    """A Markdown table: the first `left` columns aligned left, the rest (figures) right."""
    return "\n".join([f"| {' | '.join(header)} |", "|---" * left + "|---:" * (len(header) - left) + "|"]
                     + [f"| {' | '.join(map(str, row))} |" for row in rows])


def facts(results, args):
    """The run's facts, from the snapshots bench.sh takes before and after BenchmarkDotNet (date,
    /proc/loadavg, /proc/stat's cpu line, `times`), saved to run.json; or from run.json."""
    path = os.path.join(results, "run.json")
    if not args:
        return json.load(open(path))
    snaps = []
    for when in ("before", "after"):
        started, load, cpu, _, children = open(os.path.join(results, when)).read().splitlines()[:5]
        v = [int(x) for x in cpu.split()[1:9]]  # user nice system idle iowait irq softirq steal
        busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
        own = sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", children))
        snaps.append((started, " ".join(load.split()[:3]), busy, busy + (v[3] + v[4]) / os.sysconf("SC_CLK_TCK"), own))
    (started, load0, busy0, total0, own0), (_, load1, busy1, total1, own1) = snaps
    meta = {"native_library": args[0], "started": started, "load_before": load0, "load_after": load1,
            "machine_seconds": total1 - total0, "own_seconds": own1 - own0,
            "others_seconds": max(0.0, busy1 - busy0 - (own1 - own0))}
    cpu = dict(map(str.strip, line.split(":", 1)) for line in output("lscpu").splitlines() if ":" in line)
    meta["machine"] = (f"{cpu.get('Model name', '?')}, {cpu.get('CPU(s)', '?')} CPUs"
                       + (f", virtual machine ({cpu['Hypervisor vendor']})" if "Hypervisor vendor" in cpu else "")
                       + f"; {platform.system()} {platform.release()}")
    meta["commit"] = output("git", "-C", ROOT, "log", "-1", "--format=`%H` (%s)")
    if dirty := output("git", "-C", ROOT, "status", "--porcelain", "--", "dotnet", "native", "bench", "Cargo.toml"):
        meta["commit"] += "; the working tree differed in " + ", ".join(f"`{l[3:]}`" for l in dirty.splitlines())
    json.dump(meta, open(path, "w"), indent=1)
    return meta


def per_launch_medians(log):
    """{benchmark: [median ns/op of each launch]} from the WorkloadResult lines of BenchmarkDotNet's log."""
    runs, name, launch = {}, None, None
    for line in log.splitlines():
        if m := re.match(r"// Benchmark: \w+\.(\w+):", line):
            name = m.group(1)
        elif (m := re.match(r"// Launch: (\d+) / \d+", line)) and name:
            launch = runs.setdefault(name, {}).setdefault(int(m.group(1)), [])
        elif (m := re.match(r"WorkloadResult\s+\d+: .*, ([\d.]+) (ns|us|ms)/op", line)) and launch is not None:
            launch.append(float(m.group(1)) * {"ns": 1, "us": 1e3, "ms": 1e6}[m.group(2)])
    return {n: [statistics.median(v) for _, v in sorted(by.items()) if v] for n, by in runs.items()}


def main(results, args):
    meta, out = facts(results, args), []
    seconds, others = meta["machine_seconds"], meta["others_seconds"]
    share = others / seconds if seconds > 0 else 0.0
    out += ["# Benchmarks", "", "<!-- Generated by ./scripts/bench.sh (scripts/bench-report.py) from one run's results "
            "and docs/benchmarks-about.md. Do not edit by hand. -->", "",
            "`./scripts/bench.sh` runs every benchmark below in one go and writes this page; every figure on it "
            "comes from the run described here. What each benchmark measures, and how to read the figures, "
            "follows the tables.", "", "## The run", "",
            f"- Started: {meta['started']}", f"- Commit: {meta['commit']}", f"- Machine: {meta['machine']}",
            f"- Native library: release build (`{meta['native_library']}`)",
            f"- Load average (1, 5, 15 min) before the run: {meta['load_before']}; after it (the benchmarks' own "
            f"load included): {meta['load_after']}.",
            f"- During the BenchmarkDotNet run, other processes used {share * 100:.0f} % of the machine's CPU time "
            f"({others:.0f} of {seconds:.0f} CPU-seconds; the benchmarks used {meta['own_seconds']:.0f})."
            + (" **The machine was busy**: absolute times are noisier than on an idle machine; ratios within "
               "this run stay comparable." if share >= BUSY_SHARE else "")]

    rows, exports = {}, []
    for path in sorted(glob.glob(os.path.join(results, "bdn", "results", "*-report.csv"))):
        for row in csv.DictReader(open(path)):
            rows[row["Method"]] = {k: number(row[c]) for k, c in
                                   (("mean", "Mean [ns]"), ("median", "Median [ns]"), ("alloc", "Allocated [B]"))}
        if m := re.match(r"```\s*\n(.*?)\n```\s*\n(.*)", read(path[: -len(".csv")] + "-github.md").strip(), re.S):
            exports.append((os.path.basename(path)[: -len("-report.csv")].split(".")[-1], m.group(1), m.group(2)))
    if not exports:
        sys.exit(f"bench-report: no BenchmarkDotNet results under {results}/bdn/results")
    out += ["", "BenchmarkDotNet's description of the environment:", "", "```", exports[0][1].strip(), "```"]

    def ratio(a, b, key, minus=False):
        x, y = (rows.get(n, {}).get(key) for n in (a, b))
        return None if x is None or y is None else x - y if minus else x / y if y else None
    diff = lambda a, b, key: ratio(a, b, key, minus=True)

    out += ["", "## Ratios (this run's medians and means)", "",
            table(["A / B", "median", "mean", "bytes A − B", "target", "verdict"],
                  [[f"{a} / {b}", fmt(ratio(a, b, "median"), 3), fmt(ratio(a, b, "mean"), 3), fmt(diff(a, b, "alloc"), 0),
                    "" if t is None else f"≤ {t:g}", "" if t is None or ratio(a, b, "median") is None else
                    "met" if ratio(a, b, "median") <= t else "**missed**"] for a, b, t in RATIOS])]
    out += ["", table(["bytes goal", "A − B", "bytes", "limit", "verdict"],
                      [[what, f"{a} − {b}", fmt(diff(a, b, "alloc"), 0), f"≤ {n}", "" if diff(a, b, "alloc") is None
                        else "met" if diff(a, b, "alloc") <= n else "**missed**"] for a, b, n, what in BYTES], 2)]
    own, floor = diff("ActivityStartStopTracked", "ActivityStartStopLocalOnly", "median"), \
        diff("ActivityStartStopLocalOnly", "ActivityStartStop", "median")
    if own is not None and floor:
        out += ["", f"The tracker's own work per switch is {own / floor * 100:.1f} % of the floor's time "
                "((ActivityStartStopTracked − ActivityStartStopLocalOnly) / (ActivityStartStopLocalOnly − "
                f"ActivityStartStop); goal ≤ 10 %: {'met' if own / floor <= 0.10 else '**missed**'})."]
    launches = per_launch_medians(read(results, "bdn.log"))
    spreads = {n: (max(v) - min(v)) / min(v) for n, v in launches.items() if len(v) > 1 and min(v) > 0}
    if spreads:
        name = max(spreads, key=spreads.get)
        out += ["", f"The medians of single launches of one benchmark differ by up to {spreads[name] * 100:.0f} % "
                f"({name}; per-launch table below): a ratio that close to its target can land on the other side "
                "of it in another run."]
    out += ["", "## Where the time goes (A − B, medians)", "",
            table(["what the difference is", "A − B", "ns", "bytes"],
                  [[what, f"{a} − {b}", fmt(diff(a, b, "median")), fmt(diff(a, b, "alloc"), 0)] for a, b, what in DIFFS], 2)]

    for name, _, body in exports:
        out += ["", f"## {name}", "", body.strip()]
    for path in sorted(glob.glob(os.path.join(results, "bdn", "requests-*.csv"))):
        by_round, modes = {}, []
        for row in csv.DictReader(open(path)):
            modes += [row["mode"]] if row["mode"] not in modes else []
            by_round.setdefault(int(row["round"]), {})[row["mode"]] = (float(row["ns_per_request"]),
                                                                       float(row["bytes_per_request"]))
        base, full = modes[0], [r for r in by_round.values() if len(r) == len(modes)]
        ratios = {m: statistics.median(r[m][0] / r[base][0] for r in full) for m in modes[1:] if full}
        out += ["", f"## Interleaved rounds ({os.path.basename(path)})", "",
                f"Each round runs every mode ({', '.join(modes)}) in turn, the order alternating, so a change in "
                f"the machine's load falls on all of them. Median per-round ratio against {base}: "
                + ", ".join(f"{m} {fmt(r, 3)}" for m, r in ratios.items()) + ". Per request:", "",
                table(["round"] + [f"{m} ns" for m in modes] + [f"{m} / {base}" for m in modes[1:]]
                      + [f"{m} B" for m in modes],
                      [[i + 1] + [fmt(r[m][0] if m in r else None, 0) for m in modes]
                       + [fmt(r[m][0] / r[base][0] if m in r and base in r else None, 3) for m in modes[1:]]
                       + [fmt(r[m][1] if m in r else None, 0) for m in modes] for i, r in sorted(by_round.items())])]
    if launches:
        width = max(map(len, launches.values()))
        out += ["", "## Per-launch medians (ns)", "", "Each launch runs the benchmark afresh on a new thread; the "
                "tables above pool the iterations of all launches.", "",
                table(["benchmark"] + [f"launch {i + 1}" for i in range(width)],
                      [[n] + [fmt(x) for x in v] for n, v in launches.items()])]
    listings = {}
    for text in read(results, "jit.txt").split("; Assembly listing for method ")[1:]:
        head, *lines = text.splitlines()
        listings[head.split("(")[0]] = "\n".join(["; " + head] + [l.rstrip() for l in lines
                                                                   if l.strip() and not l.lstrip().startswith(";")])
    tls = re.findall(r"__tls_get_addr is at (0x[0-9A-Fa-f]+)", read(results, "bdn.log"))
    for method, listing in listings.items():
        if "(Tier1" in listing.splitlines()[0]:
            out += ["", f"## {method} as the JIT compiled it (final tier)"
                    + (f"; glibc's `__tls_get_addr` was at {tls[-1]}" if tls else ""), "", "```asm", listing, "```"]
    out += ["", "## Native harness", "", read(results, "native.md").strip(), "",
            read(ROOT, "docs", "benchmarks-about.md").strip()]
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
