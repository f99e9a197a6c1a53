#!/usr/bin/env python3
"""Writes docs/benchmarks.md (to stdout) from one run of scripts/bench.sh.

Reads the BenchmarkDotNet exports (CSV for the numbers, GitHub Markdown for the tables) and the
native harness's table from --results, computes the ratios the targets are stated in, and adds
the machine, runtime and commit. Every figure in the output comes from those files; nothing is
typed in by hand. With --smoke it only checks that every benchmark produced a row.
"""

import argparse
import csv
import glob
import os
import platform
import re
import statistics
import subprocess
import sys

WRITE = "WriteBenchmarks"
ACTIVITY = "ActivityBenchmarks"
REQUESTS = "AspNetCoreRequestBenchmarks"
DESIGN = "AsyncLocalDesignBenchmarks"
EXPECTED = {
    REQUESTS: ["Request", "RequestThreadContext"],
    DESIGN: ["Nothing", "EventOnly", "NotifyingLocalPerChange", "PlainLocalPerChange", "BoxPerRootSpan"],
    WRITE: [
        "RawStores",
        "RawStoresThreadStatic",
        "DirectWrite",
        "DirectWriteActivityIds",
        "PInvokeUpdate",
        "PInvokeUpdateSuppressGCTransition",
        "DirectWriteFullFence",
    ],
    ACTIVITY: ["ActivityStartStop", "ActivityStartStopTracked", "ActivityStartStopLocalOnly",
               "AsyncFlow", "AsyncFlowTracked"],
}


def fail(message):
    print(f"bench-report: {message}", file=sys.stderr)
    sys.exit(1)


def export(results, cls, suffix):
    paths = glob.glob(os.path.join(results, "bdn", "results", f"*.{cls}-report{suffix}"))
    if len(paths) != 1:
        fail(f"expected one {cls} export *-report{suffix} under {results}/bdn/results, found {len(paths)}")
    return paths[0]


def number(text):
    """A CSV cell as a float: '1,234.5' -> 1234.5; '-' (zero, as BenchmarkDotNet prints it) -> 0."""
    text = text.strip()
    if text in ("-", "0"):
        return 0.0
    if text in ("", "NA", "?"):
        return None
    return float(text.replace(",", ""))


def read_csv(results, cls):
    rows = {}
    with open(export(results, cls, ".csv"), newline="") as f:
        for row in csv.DictReader(f):
            rows[row["Method"]] = {
                "mean": number(row["Mean [ns]"]),
                "median": number(row["Median [ns]"]),
                "alloc": number(row["Allocated [B]"]),
            }
    missing = [m for m in EXPECTED[cls] if m not in rows or rows[m]["mean"] is None]
    if missing:
        fail(f"{cls}: no result for {', '.join(missing)}")
    return rows


def read_markdown(results, cls):
    """(environment block, job line(s) and table) of a BenchmarkDotNet GitHub export."""
    text = open(export(results, cls, "-github.md")).read().strip()
    match = re.match(r"```\s*\n(.*?)\n```\s*\n(.*)", text, re.S)
    if not match:
        fail(f"{cls}: unexpected Markdown export layout")
    return match.group(1).strip(), match.group(2).strip()


def run(*cmd):
    try:
        # Only trailing whitespace: `git status --porcelain` lines start with a status column
        # that may be a space.
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.rstrip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine():
    fields = {}
    for line in run("lscpu").splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    cpus = fields.get("CPU(s)", "?")
    cores = fields.get("Core(s) per socket", "?")
    sockets = fields.get("Socket(s)", "?")
    threads = fields.get("Thread(s) per core", "?")
    model = fields.get("Model name", "?")
    hypervisor = fields.get("Hypervisor vendor")
    text = f"{model}, {cpus} CPUs ({sockets} socket(s) × {cores} core(s) × {threads} thread(s))"
    if hypervisor:
        text += f", virtual machine ({hypervisor})"
    return text, int(cpus) if cpus.isdigit() else None


def commit():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sha = run("git", "-C", root, "rev-parse", "HEAD")
    subject = run("git", "-C", root, "log", "-1", "--format=%s")
    dirty = run("git", "-C", root, "status", "--porcelain", "--untracked-files=all", "--",
                "dotnet/OtelThreadContext", "dotnet/benchmarks", "native", "bench", "Cargo.toml")
    text = f"`{sha}` ({subject})" if sha else "unknown (not a git checkout)"
    if dirty:
        text += ("; the working tree differed from it in these benchmarked sources: "
                 + ", ".join(f"`{line[3:]}`" for line in dirty.splitlines()))
    return text


def disassembly(results, method):
    """The last listing of `method` in the JIT's output (the optimized code that was measured)."""
    path = os.path.join(results, "jit.txt")
    if not os.path.exists(path):
        return ""
    listings = open(path, errors="replace").read().split("; Assembly listing for method ")
    mine = [text for text in listings if text.startswith(f"OtelThreadContext.Benchmarks.{method}")]
    if not mine or "(Tier1" not in mine[-1].splitlines()[0]:
        return ""
    code = [line.rstrip() for line in mine[-1].splitlines()[1:]
            if line.strip() and not line.lstrip().startswith(";")]
    return "; " + mine[-1].splitlines()[0] + "\n" + "\n".join(code)


def thread_static_call_target(results, listing):
    """True when the listing's `call rax` goes to the __tls_get_addr address the run logged,
    False when it goes elsewhere, None when either address is missing."""
    call = re.search(r"mov\s+rax, 0x([0-9A-Fa-f]+)\s*\n\s*call\s+rax", listing)
    path = os.path.join(results, "bdn.log")
    logged = re.findall(r"__tls_get_addr is at 0x([0-9A-Fa-f]+)", open(path, errors="replace").read()) \
        if os.path.exists(path) else []
    if not call or not logged:
        return None
    return int(call.group(1), 16) == int(logged[-1], 16)


def per_launch_medians(results):
    """{benchmark: [median ns/op of each launch]} from the WorkloadResult lines of BenchmarkDotNet's log."""
    path = os.path.join(results, "bdn.log")
    if not os.path.exists(path):
        return {}
    medians, name, launch = {}, None, None
    for line in open(path, errors="replace"):
        m = re.match(r"// Benchmark: \w+\.(\w+):", line)
        if m:
            name = m.group(1)
            continue
        m = re.match(r"// Launch: (\d+) / \d+", line)
        if m and name:
            launch = int(m.group(1))
            medians.setdefault(name, {})[launch] = []
            continue
        m = re.match(r"WorkloadResult\s+\d+: .*, ([\d.]+) (ns|us|ms)/op", line)
        if m and name and launch:
            scale = {"ns": 1, "us": 1e3, "ms": 1e6}[m.group(2)]
            medians[name][launch].append(float(m.group(1)) * scale)
    return {
        n: [statistics.median(v) if v else None for _, v in sorted(by_launch.items())]
        for n, by_launch in medians.items()
    }


def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def ratio(a, b):
    return None if a is None or b is None or b <= 0 else a / b


def verdict(value, limit):
    if value is None:
        return "not measurable (baseline measured as 0 ns)"
    return "met" if value <= limit else "**missed**"


def interleaved(results):
    """Per-mode medians and the median per-round ratio of the interleaved request comparison."""
    path = os.path.join(results, "bdn", "requests-interleaved.csv")
    if not os.path.exists(path):
        fail(f"no interleaved request results at {path}")
    ns, alloc = {}, {}
    by_round = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            ns.setdefault(row["mode"], []).append(float(row["ns_per_request"]))
            alloc.setdefault(row["mode"], []).append(float(row["bytes_per_request"]))
            by_round.setdefault(row["round"], {})[row["mode"]] = float(row["ns_per_request"])
    ratios = [r["RequestThreadContext"] / r["Request"] for r in by_round.values() if len(r) == 2]
    return {
        "rounds": len(by_round),
        "ns": {m: statistics.median(v) for m, v in ns.items()},
        "alloc": {m: statistics.median(v) for m, v in alloc.items()},
        "ratio": statistics.median(ratios) if ratios else None,
        "ratio_range": (min(ratios), max(ratios)) if ratios else (None, None),
    }


def zero_measurements(results):
    """Benchmarks BenchmarkDotNet found indistinguishable from an empty method (its log's warning)."""
    path = os.path.join(results, "bdn.log")
    log = open(path, errors="replace").read() if os.path.exists(path) else ""
    found = set()
    for block in re.findall(r"^ZeroMeasurement\n((?:  .*\n)+)", log, re.M):
        found.update(re.findall(r"^  \w+\.(\w+):", block, re.M))
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", required=True)
    parser.add_argument("--native-library", required=True)
    parser.add_argument("--started", required=True)
    parser.add_argument("--load-before", required=True)
    parser.add_argument("--load-after", required=True)
    parser.add_argument("--cpu-before", required=True, help="busy and total jiffies from /proc/stat")
    parser.add_argument("--cpu-after", required=True)
    parser.add_argument("--own-cpu-seconds", required=True, type=float,
                        help="CPU time the BenchmarkDotNet process used")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()

    w = read_csv(args.results, WRITE)
    a = read_csv(args.results, ACTIVITY)
    native_path = os.path.join(args.results, "native.md")
    native = open(native_path).read().strip() if os.path.exists(native_path) else ""
    if "|" not in native:
        fail(f"no native harness table in {native_path}")
    env, write_table = read_markdown(args.results, WRITE)
    _, activity_table = read_markdown(args.results, ACTIVITY)
    req = read_csv(args.results, REQUESTS)
    design = read_csv(args.results, DESIGN)
    _, request_table = read_markdown(args.results, REQUESTS)
    _, design_table = read_markdown(args.results, DESIGN)
    inter = interleaved(args.results)

    if args.smoke:
        print("# Benchmark smoke run\n")
        print("Every benchmark ran once (BenchmarkDotNet dry job); these figures measure nothing.\n")
        print(write_table + "\n\n" + activity_table + "\n\n" + request_table + "\n\n" + design_table
              + f"\n\ninterleaved requests: {inter}\n\n" + native)
        return

    model, cpus = machine()
    busy_before, total_before = (int(x) for x in args.cpu_before.split())
    busy_after, total_after = (int(x) for x in args.cpu_after.split())
    hz = os.sysconf("SC_CLK_TCK")
    machine_seconds = (total_after - total_before) / hz
    others = max(0.0, (busy_after - busy_before) / hz - args.own_cpu_seconds)
    others_share = others / machine_seconds if machine_seconds > 0 else 0.0
    busy = others_share >= 0.05
    jit = disassembly(args.results, "WriteBenchmarks:DirectWrite()")
    tls_call = thread_static_call_target(args.results, jit) if jit else None
    if tls_call:
        tls_text = ("a call to glibc's `__tls_get_addr` (the `call rax` in DirectWrite's code below: "
                    "its target is the address of `__tls_get_addr` that the benchmark logged in this "
                    "run), because CoreCLR's own thread-local block lives in `libcoreclr.so`, a shared "
                    "library using the general-dynamic TLS model; the native update's lookup is a TLS "
                    "descriptor call that, for a library in static TLS, just returns a fixed offset")
    else:
        unmatched = "; in this run its target was not `__tls_get_addr`" if tls_call is False else ""
        tls_text = ("a call that returns the thread's static block (the `call rax` in DirectWrite's "
                    f"code below{unmatched})")
    lines = []
    out = lines.append

    def target_rows(stat):
        dw = w["DirectWrite"][stat]
        pinv = w["PInvokeUpdate"][stat]
        sup = w["PInvokeUpdateSuppressGCTransition"][stat]
        raw = w["RawStores"][stat]
        ss, sst = a["ActivityStartStop"][stat], a["ActivityStartStopTracked"][stat]
        return [
            ("DirectWrite / PInvokeUpdate", ratio(dw, pinv), 0.25),
            ("DirectWrite / PInvokeUpdateSuppressGCTransition", ratio(dw, sup), 0.5),
            ("DirectWrite / RawStores", ratio(dw, raw), 2.0),
            ("ActivityStartStopTracked / ActivityStartStop − 1 (tracker overhead per start/stop pair)",
             None if ratio(sst, ss) is None else ratio(sst, ss) - 1, 0.15),
        ]

    mean_rows, median_rows = target_rows("mean"), target_rows("median")
    dw_alloc = w["DirectWrite"]["alloc"]
    pair_alloc = a["ActivityStartStopTracked"]["alloc"] - a["ActivityStartStop"]["alloc"]
    flow_alloc = a["AsyncFlowTracked"]["alloc"] - a["AsyncFlow"]["alloc"]

    def med(rows, name):
        return rows[name]["median"]

    lookup = med(w, "RawStoresThreadStatic") - med(w, "RawStores")
    protocol = med(w, "DirectWrite") - med(w, "RawStoresThreadStatic")
    hexids = med(w, "DirectWriteActivityIds") - med(w, "DirectWrite")
    fences = med(w, "DirectWriteFullFence") - med(w, "DirectWrite")
    transition = med(w, "PInvokeUpdate") - med(w, "PInvokeUpdateSuppressGCTransition")
    pair = med(a, "ActivityStartStopTracked") - med(a, "ActivityStartStop")
    flow = med(a, "AsyncFlowTracked") - med(a, "AsyncFlow")
    local = med(a, "ActivityStartStopLocalOnly") - med(a, "ActivityStartStop")
    local_alloc = a["ActivityStartStopLocalOnly"]["alloc"] - a["ActivityStartStop"]["alloc"]
    flow_pct = ratio(flow, med(a, "AsyncFlow"))

    out("# Benchmarks")
    out("")
    out("<!-- Generated by ./scripts/bench.sh (scripts/bench-report.py) from one run's results. "
        "Do not edit by hand: run the script again. -->")
    out("")
    out("`./scripts/bench.sh` runs every benchmark below in one go and writes this file. "
        "All figures on this page come from the run described here.")
    out("")
    out("## The run")
    out("")
    out(f"- Started: {args.started}")
    out(f"- Commit: {commit()}")
    out(f"- Machine: {model}; {platform.system()} {platform.release()}")
    out(f"- Native library: release build (`{os.path.relpath(args.native_library)}`)")
    out(f"- Load average (1, 5, 15 min) before the run: {args.load_before}; after it (the "
        f"benchmarks' own load included): {args.load_after}.")
    out(f"- During the BenchmarkDotNet run, other processes used {others_share * 100:.0f} % of the "
        f"machine's CPU time ({others:.0f} of {machine_seconds:.0f} CPU-seconds; the benchmarks "
        f"used {args.own_cpu_seconds:.0f}).")
    if busy:
        out("  **The machine was busy**: other processes shared the CPUs, so the figures are noisier "
            "than on an idle machine; ratios from the same run are still comparable, absolute "
            "times less so.")
    else:
        out("  No other process used a noticeable share of the CPUs (load averages lag: they still "
            "count work that ended before the run).")
    out("")
    out("BenchmarkDotNet's description of the environment:")
    out("")
    out("```")
    out(env)
    out("```")
    out("")
    out("## Targets")
    out("")
    out("Ratios of figures from this run. Verdicts use the median (less sensitive to a busy "
        "machine); the mean is shown next to it.")
    out("")
    out("| ratio | median | mean | target | verdict |")
    out("|---|---:|---:|---:|---|")
    for (name, median, limit), (_, mean, _) in zip(median_rows, mean_rows):
        shown = lambda v: fmt(v * 100, 1) + " %" if "overhead" in name and v is not None else fmt(v, 3)
        limit_text = f"≤ {limit * 100:.0f} %" if "overhead" in name else f"≤ {limit:g}"
        out(f"| {name} | {shown(median)} | {shown(mean)} | {limit_text} | {verdict(median, limit)} |")
    out(f"| AsyncFlowTracked / AsyncFlow − 1 (tracker overhead per async flow, for reference) | "
        f"{fmt(None if ratio(a['AsyncFlowTracked']['median'], a['AsyncFlow']['median']) is None else (ratio(a['AsyncFlowTracked']['median'], a['AsyncFlow']['median']) - 1) * 100, 1)} % | "
        f"{fmt(None if ratio(a['AsyncFlowTracked']['mean'], a['AsyncFlow']['mean']) is None else (ratio(a['AsyncFlowTracked']['mean'], a['AsyncFlow']['mean']) - 1) * 100, 1)} % | | |")
    out(f"| DirectWrite / RawStoresThreadStatic (for reference: the floor of a writer that finds its "
        f"thread's record) | {fmt(ratio(w['DirectWrite']['median'], w['RawStoresThreadStatic']['median']))} "
        f"| {fmt(ratio(w['DirectWrite']['mean'], w['RawStoresThreadStatic']['mean']))} | | |")
    out(f"| bytes allocated per DirectWrite | {dw_alloc:.0f} B | | 0 B | {'met' if dw_alloc == 0 else '**missed**'} |")
    out(f"| bytes the tracker adds per Activity switch (half a start/stop pair) | {pair_alloc / 2:.0f} B "
        f"| | 0 B | {'met' if pair_alloc <= 0 else '**missed**'} |")
    req_over = None if inter["ratio"] is None else inter["ratio"] - 1
    out(f"| AddThreadContext's time per ASP.NET Core request (interleaved rounds: median of the per-round "
        f"ratios − 1) | {fmt(None if req_over is None else req_over * 100, 1)} % | | ≤ 2 % | "
        f"{'met' if req_over is not None and req_over <= 0.02 else '**missed**'} |")
    req_bytes = inter["alloc"].get("RequestThreadContext", 0) - inter["alloc"].get("Request", 0)
    out(f"| AddThreadContext's bytes per ASP.NET Core request (interleaved) | {req_bytes:.0f} B "
        f"({fmt(ratio(req_bytes, inter['alloc'].get('Request')) * 100 if inter['alloc'].get('Request') else None, 1)} %) | | ≤ 2 % | "
        f"{'met' if inter['alloc'].get('Request') and req_bytes <= 0.02 * inter['alloc']['Request'] else '**missed**'} |")
    out("")


    launches = per_launch_medians(args.results)
    spreads = {
        n: (max(v) - min(v)) / min(v)
        for n, v in launches.items()
        if n in ("DirectWrite", "PInvokeUpdate", "PInvokeUpdateSuppressGCTransition",
                 "ActivityStartStop", "ActivityStartStopTracked") and len(v) > 1 and min(v) > 0
    }
    if spreads:
        worst = max(spreads, key=spreads.get)
        out(f"The medians of single launches differ by up to {spreads[worst] * 100:.0f} % "
            f"({worst}; see the per-launch table), so a ratio within that distance of its limit can land on the "
            "other side of it in another run.")
        out("")
    missed = {name for name, value, limit in median_rows if value is not None and value > limit}
    if missed or pair_alloc > 0:
        out("### Why targets are missed (from this run's figures; details below)")
        out("")
    if missed & {"DirectWrite / PInvokeUpdate", "DirectWrite / PInvokeUpdateSuppressGCTransition"}:
        out(f"- **DirectWrite against P/Invoke**: the P/Invoke is cheap here "
            f"({fmt(med(w, 'PInvokeUpdate'))} ns, {fmt(med(w, 'PInvokeUpdateSuppressGCTransition'))} ns "
            f"with the transition suppressed), and both paths find the thread's record through thread-local "
            f"storage: DirectWrite ({fmt(med(w, 'DirectWrite'))} ns) spends {fmt(lookup)} ns of it on its "
            "`[ThreadStatic]` lookup"
            + (", a call to glibc's `__tls_get_addr`" if tls_call else "")
            + ", while the native update finds its slot with a TLS descriptor that returns a fixed "
            "offset. Writing in place saves the call and the GC transition, and pays a dearer lookup; "
            "every managed writer that finds the calling thread's record through a `[ThreadStatic]` pays it.")
    if "DirectWrite / RawStores" in missed:
        out(f"- **DirectWrite against RawStores**: RawStores ({fmt(med(w, 'RawStores'))} ns) finds no "
            f"record; its per-thread counterpart RawStoresThreadStatic takes {fmt(med(w, 'RawStoresThreadStatic'))} "
            f"ns, and DirectWrite is {fmt(ratio(med(w, 'DirectWrite'), med(w, 'RawStoresThreadStatic')))}× that.")
    tracker_name = "ActivityStartStopTracked / ActivityStartStop − 1 (tracker overhead per start/stop pair)"
    if tracker_name in missed or pair_alloc > 0:
        base = med(a, "ActivityStartStop")
        local_share = ratio(local, base)
        own_share = ratio(pair - local, base)
        out(f"- **Activity tracking**: keeping the notifying `AsyncLocal` in step with `Activity.Current` "
            f"(ActivityStartStopLocalOnly, which writes no record) costs "
            f"{fmt(None if local_share is None else local_share * 100, 1)} % of a start/stop pair and "
            f"{local_alloc / 2:.0f} B per switch by itself; the tracker's own handlers and writes add "
            f"{fmt(None if own_share is None else own_share * 100, 1)} % and "
            f"{(pair_alloc - local_alloc) / 2:.0f} B per switch. The local is how the tracker sees "
            "`await` continuations and pool threads switching contexts (`Activity.CurrentChanged` does "
            "not fire for them).")
        if local_alloc > 0:
            out("  Every assignment of an `AsyncLocal` allocates a new `ExecutionContext`, so the 0 B "
                "target cannot be met while tracking relies on such a local.")
        if local_share is not None and local_share > 0.15:
            out("  The local alone exceeds the 15 % budget, so the time target cannot be met either "
                "while tracking relies on it.")
    if missed or pair_alloc > 0:
        out("")

    out("## Where the time goes (medians, this run)")
    out("")
    raw_note = (" BenchmarkDotNet reported RawStores as indistinguishable from an empty method "
                "(ZeroMeasurement), so DirectWrite / RawStores divides by a figure within its noise."
                if "RawStores" in zero_measurements(args.results) else "")
    out(f"- **The floor**: RawStores = {fmt(med(w, 'RawStores'))} ns: four plain stores cost about "
        f"as much as the empty call BenchmarkDotNet subtracts as overhead.{raw_note}")
    out(f"- **Finding the thread's record**: RawStoresThreadStatic − RawStores = {fmt(lookup)} ns. "
        "Every per-thread writer pays one thread-local lookup; on Linux x64, CoreCLR compiles a "
        f"`[ThreadStatic]` field read into {tls_text}. RawStores does no lookup; the lookup alone (RawStoresThreadStatic) is already "
        f"{fmt(ratio(med(w, 'RawStoresThreadStatic'), med(w, 'RawStores')))}× RawStores.")
    if protocol is not None and protocol > 0.1:
        protocol_cause = (": the two stores of the valid flag, and, in the code below, the arguments "
                          "loaded before the thread-static call, which keeps them in callee-saved "
                          "registers (more pushes and pops).")
    else:
        protocol_cause = (", within this run's noise: the two stores of the valid flag and the extra "
                          "saved registers (code below) cost nothing this run could measure.")
    out(f"- **The valid-flag protocol and the call shape**: DirectWrite − RawStoresThreadStatic = "
        f"{fmt(protocol)} ns{protocol_cause}")
    out(f"- **Full fences instead of Volatile ordering**: DirectWriteFullFence − DirectWrite = "
        f"{fmt(fences)} ns (two `lock or` barriers).")
    out(f"- **The GC transition of a normal P/Invoke**: PInvokeUpdate − PInvokeUpdateSuppressGCTransition "
        f"= {fmt(transition)} ns. With the transition suppressed, the native update is one call plus "
        "the native TLS lookup, close to the managed writer's thread-static lookup plus stores.")
    out(f"- **Activity ids to bytes**: DirectWriteActivityIds − DirectWrite = {fmt(hexids)} ns: "
        "`ActivityTraceId`/`ActivitySpanId` hold their ids as hex strings, so every write from an "
        "Activity decodes 48 hex characters first. Activity tracking pays this at every switch.")
    out(f"- **Activity tracking, per start/stop pair** (two switches): {fmt(pair)} ns and "
        f"{pair_alloc:.0f} B in all. Of that, keeping a notifying `AsyncLocal` equal to "
        f"`Activity.Current` (ActivityStartStopLocalOnly − ActivityStartStop, no record written) takes "
        f"{fmt(local)} ns and {local_alloc:.0f} B: each assignment of an `AsyncLocal` builds a new "
        "`ExecutionContext`, and the tracker needs that local to be told about context switches that "
        f"`Activity.CurrentChanged` does not report. The rest, {fmt(pair - local)} ns and "
        f"{pair_alloc - local_alloc:.0f} B, is the tracker's own work: its handlers and one record "
        "write per switch (the Activity's ids, attributes emptied, in one valid-flag window).")
    out(f"- **Activity tracking, per async flow** (two spans, three awaits that resume on the pool): "
        f"{fmt(flow)} ns ({fmt(None if flow_pct is None else flow_pct * 100, 1)} %) and "
        f"{flow_alloc:.0f} B. Besides the four span changes (each an `AsyncLocal` assignment and a "
        "write), every context switch on a pool thread writes the record: when a continuation starts "
        "there, and when the thread leaves the flow (the tracker clears the record).")
    out("")
    if jit:
        callee = "`__tls_get_addr`, which returns" if tls_call else "a helper returning"
        out("DirectWrite as the JIT compiled it in this run (final tier; `ThreadContext.Set` is "
            f"inlined; the `call rax` before the `[ThreadStatic]` load goes to {callee} the thread's "
            "statics):")
        out("")
        out("```asm")
        out(jit)
        out("```")
        out("")
    out("## BenchmarkDotNet")
    out("")
    out("### In-place writes (Ratio: against RawStores)")
    out("")
    out("- `RawStores` (baseline): the same 16 + 8 + 1 bytes stored into native memory with plain stores, no protocol.")
    out("- `RawStoresThreadStatic`: the same, with the target found through a `[ThreadStatic]` field.")
    out("- `DirectWrite`: `ThreadContext.Set(ReadOnlySpan<byte>, ReadOnlySpan<byte>, byte)` on a thread whose record is attached and cached.")
    out("- `DirectWriteActivityIds`: `ThreadContext.Set(ActivityTraceId, ActivitySpanId, ActivityTraceFlags)`, the overload Activity tracking uses.")
    out("- `PInvokeUpdate`: `otel_thread_ctx_update` through a normal `[LibraryImport]` P/Invoke.")
    out("- `PInvokeUpdateSuppressGCTransition`: the same with `[SuppressGCTransition]` (the package's binding).")
    out("- `DirectWriteFullFence`: valid = 0, `Interlocked.MemoryBarrier()`, the fields, `Interlocked.MemoryBarrier()`, valid = 1.")
    out("")
    out(write_table)
    out("")
    out("### Activity tracking (Ratio: against the untracked benchmark of the same category)")
    out("")
    out("- `ActivityStartStop` / `ActivityStartStopTracked`: `ActivitySource.StartActivity` and `Dispose` "
        "with a listener that records everything; tracking off / on (`ActivityThreadContext.Enable()`).")
    out("- `ActivityStartStopLocalOnly`: tracking off, but an `Activity.CurrentChanged` handler keeps a "
        "notifying `AsyncLocal` equal to `Activity.Current`, as the tracker does, and writes nothing.")
    out("- `AsyncFlow` / `AsyncFlowTracked`: a request span with a child span and three `await Task.Yield()` "
        "that resume on thread-pool threads; tracking off / on. 64 flows run at once per invocation "
        "(times are per flow), so the pool's threads stay busy and a flow's time is its work rather "
        "than the latency of waking a parked thread at each await.")
    out("")
    out(activity_table)
    out("")
    d_base = design["Nothing"]

    def d_per_switch(name, key):
        return (design[name][key] - d_base[key]) / 2

    out("### A whole ASP.NET Core request (Ratio: against Request)")
    out("")
    out(f"`AspNetCoreRequestBenchmarks`: a GET through the whole ASP.NET Core pipeline in process "
        f"(`Microsoft.AspNetCore.TestHost`, no sockets), traced by the OpenTelemetry SDK with ASP.NET "
        f"Core instrumentation, to a handler that does `await Task.Yield()` (it resumes on the pool); "
        f"4 concurrent clients, 256 requests per invocation, times per request. `Request`: the SDK alone; "
        f"`RequestThreadContext`: plus `AddThreadContext(o => o.ActivityTags.Add(\"http.route\"))`.")
    out("")
    out(request_table)
    out("")
    ns_plain, ns_tc = inter["ns"].get("Request"), inter["ns"].get("RequestThreadContext")
    lo, hi = inter["ratio_range"]
    out(f"BenchmarkDotNet runs the two cases one after the other, so a change in the machine's load "
        f"between them lands in the ratio. The same comparison interleaved (`--request-rounds`: "
        f"{inter['rounds']} rounds, each starting the service without and with `AddThreadContext`, "
        f"alternating which goes first, 20,480 requests per mode and round): median "
        f"{fmt(ns_plain, 0)} ns and {inter['alloc'].get('Request', 0):.0f} B per request without, "
        f"{fmt(ns_tc, 0)} ns and {inter['alloc'].get('RequestThreadContext', 0):.0f} B with; the per-round "
        f"ratio's median is {fmt(inter['ratio'], 3)} (range {fmt(lo, 3)}–{fmt(hi, 3)}).")
    out("")
    out("### Cutting the AsyncLocal share (Ratio: against Nothing)")
    out("")
    out("`AsyncLocalDesignBenchmarks`: one Activity started and stopped (two switches of "
        "`Activity.Current`) under each way of following it; none writes a record.")
    out("")
    out("- `Nothing`: no follower (baseline). `EventOnly`: an empty `Activity.CurrentChanged` handler.")
    out("- `NotifyingLocalPerChange`: today's tracker mechanism, a notifying `AsyncLocal` assigned at "
        "every change.")
    out("- `PlainLocalPerChange`: the same with a local that has no change handler, to split the "
        "notification from the `ExecutionContext` copy every assignment makes (it cannot see context "
        "switches, so it is no design, only a measurement).")
    out("- `BoxPerRootSpan`: the notifying local assigned once per flow, holding a mutable box the "
        "handler updates for later changes: no `ExecutionContext` copy per change. Rejected: flows "
        "forked from one context (`Task.Run`, `Task.WhenAll` of child tasks) share the box, so a span "
        "change in one flow shows on another flow's thread at its next switch.")
    out("")
    out(design_table)
    out("")
    out(f"Per switch (half a start/stop pair), over `Nothing`: the event alone "
        f"{fmt(d_per_switch('EventOnly', 'median'))} ns and {d_per_switch('EventOnly', 'alloc'):.0f} B; "
        f"today's notifying local {fmt(d_per_switch('NotifyingLocalPerChange', 'median'))} ns and "
        f"{d_per_switch('NotifyingLocalPerChange', 'alloc'):.0f} B; a plain local "
        f"{fmt(d_per_switch('PlainLocalPerChange', 'median'))} ns and "
        f"{d_per_switch('PlainLocalPerChange', 'alloc'):.0f} B; the box "
        f"{fmt(d_per_switch('BoxPerRootSpan', 'median'))} ns and {d_per_switch('BoxPerRootSpan', 'alloc'):.0f} B "
        "(the box is assigned once; what remains is that every later `Activity.Current` assignment copies "
        "an `ExecutionContext` that now holds two locals, one of them notifying). The bytes are exact; "
        "the times move with the machine's load.")
    out("")
    if launches:
        width = max(len(v) for v in launches.values())
        out("### Per-launch medians (ns)")
        out("")
        out("Each launch runs the benchmark afresh on a new thread; the tables above pool the "
            "iterations of all launches. The code is the same in every launch; a spread here is "
            "run-to-run variation.")
        out("")
        out("| benchmark | " + " | ".join(f"launch {i + 1}" for i in range(width)) + " |")
        out("|---|" + "---:|" * width)
        for name, values in launches.items():
            out(f"| {name} | " + " | ".join(fmt(v) for v in values) + " |")
        out("")
    out("## Native harness")
    out("")
    out("`bench`: `otel_thread_ctx_update` called through `dlsym`, next to a minimal C writer "
        "doing the same protocol on its own TLSDESC slot (changing ids on every call, loop included).")
    out("")
    out(native)
    out("")
    out("## How it runs")
    out("")
    out("- **In-process** (`InProcessEmitToolchain`). BenchmarkDotNet's default builds and restores a "
        "generated project per run and starts a process per benchmark; that child build starts "
        "without this script's `--artifacts-path` and `-p:OtelNativeLibrary`, so it would build into "
        "the shared `dotnet/*/bin` folders while others build there. In-process runs the assembly `bench.sh` built into its private folder, "
        "with the native library next to it, and needs no restore or network. The cost: all "
        "benchmarks share one process, so each cleans up after itself (tracking is turned off and "
        "the listener removed in `GlobalCleanup`, which checks it).")
    out("- **Setup on the benchmark thread.** The in-process runner gives each benchmark its own "
        "thread and runs `GlobalSetup`, every iteration and `GlobalCleanup` on it. `GlobalSetup` "
        "makes the first `ThreadContext` call (the attach P/Invoke), so no measured call attaches; "
        "`GlobalCleanup` fails the run if it is on another thread or the thread's record changed. "
        "The log of every run says so (`// OtelThreadContext: setup, benchmark and cleanup ran on …`).")
    out("- **Job**: 3 launches of 5 warm-up and 10 measured iterations of 250 ms each "
        "(`dotnet/benchmarks/Program.cs`). The operations take nanoseconds to microseconds, so a 250 ms "
        "iteration holds millions of calls and varies little within a launch; between launches the "
        "figures of this virtual machine shift (see the per-launch medians; a shift can also start "
        "mid-launch and last a few iterations, with no other process running), so three launches, "
        "each on a fresh thread, sample that instead of reporting one launch's luck. BenchmarkDotNet's "
        "default (up to 100 iterations of 500 ms per launch) would take far longer and measure the "
        "same thing. A full run takes about 5 minutes.")
    out("- **Memory**: `MemoryDiagnoser` counts the managed bytes allocated per operation by the "
        "whole process (`GC.GetTotalAllocatedBytes(precise: true)`), so the async flows include what "
        "their continuations allocate on pool threads.")
    out("- **Smoke**: `./scripts/bench.sh --smoke` (run by `scripts/test.sh`) runs every benchmark once "
        "with BenchmarkDotNet's dry job and the native harness with 200,000 calls, and leaves this file alone.")
    out("- **Disassembly**: the JIT's code for a benchmark is printed by "
        "`DOTNET_JitDisasm=DirectWrite dotnet target/bench-dotnet/full/build/bin/OtelThreadContext.Benchmarks/release/OtelThreadContext.Benchmarks.dll --filter '*.DirectWrite'` "
        "(the last, Tier1, listing is the measured code).")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
