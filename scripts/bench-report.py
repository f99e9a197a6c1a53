#!/usr/bin/env python3
"""Writes docs/benchmarks.md (to stdout) from one run of scripts/bench.sh.

The prose lives in docs/benchmarks-template.md, which a person edits; this script computes the
data (tables, ratios, single figures, conditions) and fills the template's placeholders (the
template's head describes them). An unknown or unfilled placeholder, or a missing benchmark row,
fails the run. With --smoke it only checks that every benchmark produced a row.

bench.sh passes the run's facts (start time, load, CPU use, native library); they are saved to
<results>/run.json, so `--render-from <results>` renders the report again from a results folder.
"""

import argparse
import ast
import csv
import glob
import json
import operator
import os
import platform
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "docs", "benchmarks-template.md")

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

# The targets, as data. `value` is an expression over benchmark names (their median and, in a
# second column, mean ns; or their allocated bytes when `unit` is "B"); for the interleaved rows,
# over Request, RequestThreadContext (medians per request) and round_ratio (the median of the
# per-round ratios). A row is met when value <= limit (value / share_of <= limit when share_of is
# set); limit None: shown for reference. `id` names the row in {{if missed:ID}}.
TARGETS = [
    dict(id="DirectWrite/PInvokeUpdate", label="DirectWrite / PInvokeUpdate",
         value="DirectWrite / PInvokeUpdate", show="x3", limit=0.25),
    dict(id="DirectWrite/PInvokeUpdateSuppressGCTransition",
         label="DirectWrite / PInvokeUpdateSuppressGCTransition",
         value="DirectWrite / PInvokeUpdateSuppressGCTransition", show="x3", limit=0.5),
    dict(id="DirectWrite/RawStores", label="DirectWrite / RawStores",
         value="DirectWrite / RawStores", show="x3", limit=2.0),
    dict(id="tracker", label="ActivityStartStopTracked / ActivityStartStop − 1 (tracker overhead "
         "per start/stop pair)", value="ActivityStartStopTracked / ActivityStartStop - 1",
         show="%", limit=0.15),
    dict(id="flow", label="AsyncFlowTracked / AsyncFlow − 1 (tracker overhead per async flow, for "
         "reference)", value="AsyncFlowTracked / AsyncFlow - 1", show="%", limit=None),
    dict(id="DirectWrite/RawStoresThreadStatic", label="DirectWrite / RawStoresThreadStatic (for "
         "reference: the floor of a writer that finds its thread's record)",
         value="DirectWrite / RawStoresThreadStatic", show="x2", limit=None),
    dict(id="DirectWrite-bytes", label="bytes allocated per DirectWrite", value="DirectWrite",
         unit="B", limit=0),
    dict(id="tracker-bytes", label="bytes the tracker adds per Activity switch (half a start/stop pair)",
         value="(ActivityStartStopTracked - ActivityStartStop) / 2", unit="B", limit=0),
    dict(id="request", label="AddThreadContext's time per ASP.NET Core request (interleaved rounds: "
         "median of the per-round ratios − 1)", value="round_ratio - 1", show="%", limit=0.02,
         source="interleaved"),
    dict(id="request-bytes", label="AddThreadContext's bytes per ASP.NET Core request (interleaved)",
         value="RequestThreadContext - Request", share_of="Request", unit="B", limit=0.02,
         source="interleaved"),
]

# Benchmarks whose per-launch spread the report quotes (the ones the time targets divide).
SPREAD_OF = ["DirectWrite", "PInvokeUpdate", "PInvokeUpdateSuppressGCTransition",
             "ActivityStartStop", "ActivityStartStopTracked"]
BUSY_SHARE = 0.05  # other processes' share of the CPU time from which the run counts as busy


def fail(message):
    print(f"bench-report: {message}", file=sys.stderr)
    sys.exit(1)


# ---- reading one run's results ----

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


def read_text(results, name):
    path = os.path.join(results, name)
    return open(path, errors="replace").read() if os.path.exists(path) else ""


def run_cmd(*cmd):
    try:
        # Only trailing whitespace: `git status --porcelain` lines start with a status column
        # that may be a space.
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.rstrip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine():
    fields = {}
    for line in run_cmd("lscpu").splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    get = lambda key: fields.get(key, "?")
    text = (f"{get('Model name')}, {get('CPU(s)')} CPUs ({get('Socket(s)')} socket(s) × "
            f"{get('Core(s) per socket')} core(s) × {get('Thread(s) per core')} thread(s))")
    if fields.get("Hypervisor vendor"):
        text += f", virtual machine ({fields['Hypervisor vendor']})"
    return f"{text}; {platform.system()} {platform.release()}"


def commit():
    sha = run_cmd("git", "-C", ROOT, "rev-parse", "HEAD")
    subject = run_cmd("git", "-C", ROOT, "log", "-1", "--format=%s")
    dirty = run_cmd("git", "-C", ROOT, "status", "--porcelain", "--untracked-files=all", "--",
                    "dotnet/OtelThreadContext", "dotnet/benchmarks", "native", "bench", "Cargo.toml")
    text = f"`{sha}` ({subject})" if sha else "unknown (not a git checkout)"
    if dirty:
        text += ("; the working tree differed from it in these benchmarked sources: "
                 + ", ".join(f"`{line[3:]}`" for line in dirty.splitlines()))
    return text


def disassembly(results, method):
    """The last listing of `method` in the JIT's output (the optimized code that was measured)."""
    listings = read_text(results, "jit.txt").split("; Assembly listing for method ")
    mine = [text for text in listings if text.startswith(f"OtelThreadContext.Benchmarks.{method}")]
    if not mine or "(Tier1" not in mine[-1].splitlines()[0]:
        return ""
    code = [line.rstrip() for line in mine[-1].splitlines()[1:]
            if line.strip() and not line.lstrip().startswith(";")]
    return "; " + mine[-1].splitlines()[0] + "\n" + "\n".join(code)


def thread_static_call_target(log, listing):
    """True when the listing's `call rax` goes to the __tls_get_addr address the run logged,
    False when it goes elsewhere, None when either address is missing."""
    call = re.search(r"mov\s+rax, 0x([0-9A-Fa-f]+)\s*\n\s*call\s+rax", listing)
    logged = re.findall(r"__tls_get_addr is at 0x([0-9A-Fa-f]+)", log)
    if not call or not logged:
        return None
    return int(call.group(1), 16) == int(logged[-1], 16)


def per_launch_medians(log):
    """{benchmark: [median ns/op of each launch]} from the WorkloadResult lines of BenchmarkDotNet's log."""
    medians, name, launch = {}, None, None
    for line in log.splitlines():
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


def interleaved(results, log):
    """The rounds of the interleaved request comparison, per-mode medians and per-round ratios."""
    path = os.path.join(results, "bdn", "requests-interleaved.csv")
    if not os.path.exists(path):
        fail(f"no interleaved request results at {path}")
    ns, alloc, by_round = {}, {}, {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            ns.setdefault(row["mode"], []).append(float(row["ns_per_request"]))
            alloc.setdefault(row["mode"], []).append(float(row["bytes_per_request"]))
            by_round.setdefault(int(row["round"]), {})[row["mode"]] = (
                float(row["ns_per_request"]), float(row["bytes_per_request"]))
    for mode in EXPECTED[REQUESTS]:
        if mode not in ns:
            fail(f"{path}: no rounds of {mode}")
    ratios = [r["RequestThreadContext"][0] / r["Request"][0] for r in by_round.values() if len(r) == 2]
    per_mode = re.search(r"interleaved requests: \d+ rounds x (\d+) requests per mode", log)
    return {
        "rounds": by_round,
        "requests": int(per_mode.group(1)) if per_mode else None,
        "ns": {m: statistics.median(v) for m, v in ns.items()},
        "alloc": {m: statistics.median(v) for m, v in alloc.items()},
        "ratio": statistics.median(ratios) if ratios else None,
        "ratio_range": (min(ratios), max(ratios)) if ratios else (None, None),
    }


def zero_measurements(log):
    """Benchmarks BenchmarkDotNet found indistinguishable from an empty method (its log's warning)."""
    found = set()
    for block in re.findall(r"^ZeroMeasurement\n((?:  .*\n)+)", log, re.M):
        found.update(re.findall(r"^  \w+\.(\w+):", block, re.M))
    return found


class Run:
    """Everything one run measured, read from its results folder."""

    def __init__(self, results, meta):
        self.results, self.meta = results, meta
        self.bdn = {cls: read_csv(results, cls) for cls in EXPECTED}
        self.rows = {name: row for rows in self.bdn.values() for name, row in rows.items()}
        self.tables = {cls: read_markdown(results, cls)[1] for cls in EXPECTED}
        self.env = read_markdown(results, WRITE)[0]
        self.native = read_text(results, "native.md").strip()
        if "|" not in self.native:
            fail(f"no native harness table in {os.path.join(results, 'native.md')}")
        log = read_text(results, "bdn.log")
        self.inter = interleaved(results, log)
        self.launches = per_launch_medians(log)
        self.zero = zero_measurements(log)
        self.jit = disassembly(results, "WriteBenchmarks:DirectWrite()")
        self.tls_call = thread_static_call_target(log, self.jit) if self.jit else None

    def names(self, metric, source="bdn"):
        if source == "interleaved":
            key = "alloc" if metric == "alloc" else "ns"
            names = dict(self.inter[key])
            names["round_ratio"] = self.inter["ratio"]
            return names
        return {name: row[metric] for name, row in self.rows.items()}


# ---- figures: expressions over benchmark names ----

OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate(expr, names):
    """`expr` (benchmark names, numbers, + - * / and parentheses) over `names`; None when a
    figure it needs is missing or a divisor is not positive."""
    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise KeyError(node.id)
            return names[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            v = walk(node.operand)
            return None if v is None else -v
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            a, b = walk(node.left), walk(node.right)
            if a is None or b is None or (isinstance(node.op, ast.Div) and b <= 0):
                return None
            return OPS[type(node.op)](a, b)
        raise ValueError(ast.dump(node))
    try:
        return walk(ast.parse(expr.strip(), mode="eval"))
    except KeyError as e:
        raise TemplateError(f"unknown benchmark {e} in `{expr}`") from None
    except (SyntaxError, ValueError):
        raise TemplateError(f"not an expression over benchmark names: `{expr}`") from None


def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def show(value, how):
    """A figure as the report prints it: x3/x2 (ratios), % (a fraction as a percentage), B (bytes)."""
    if how == "%":
        return fmt(None if value is None else value * 100, 1) + " %"
    if how == "B":
        return fmt(value, 0) + " B"
    return fmt(value, int(how[1:]))


# ---- data rendered as Markdown ----

def cpu_use(m):
    """(CPU-seconds other processes used during the BenchmarkDotNet run, the machine's
    CPU-seconds in that time, the others' share)."""
    busy_before, total_before = (int(x) for x in m["cpu_before"].split())
    busy_after, total_after = (int(x) for x in m["cpu_after"].split())
    machine_seconds = (total_after - total_before) / m["clock_ticks"]
    others = max(0.0, (busy_after - busy_before) / m["clock_ticks"] - m["own_cpu_seconds"])
    return others, machine_seconds, others / machine_seconds if machine_seconds > 0 else 0.0


def run_block(run):
    """The machine/runtime/commit block."""
    m = run.meta
    others, machine_seconds, share = cpu_use(m)
    return "\n".join([
        f"- Started: {m['started']}",
        f"- Commit: {m['commit']}",
        f"- Machine: {m['machine']}",
        f"- Native library: release build (`{m['native_library']}`)",
        f"- Load average (1, 5, 15 min) before the run: {m['load_before']}; after it (the "
        f"benchmarks' own load included): {m['load_after']}.",
        f"- During the BenchmarkDotNet run, other processes used {share * 100:.0f} % of the "
        f"machine's CPU time ({others:.0f} of {machine_seconds:.0f} CPU-seconds; the benchmarks "
        f"used {m['own_cpu_seconds']:.0f}).",
    ])


def target_figures(run, t):
    """(median-based value, mean-based value or None, value compared with the limit)."""
    unit = t.get("unit")
    source = t.get("source", "bdn")
    if unit == "B":
        value = evaluate(t["value"], run.names("alloc", source))
        checked = value
        if t.get("share_of") and value is not None:
            checked = evaluate(f"({t['value']}) / {t['share_of']}", run.names("alloc", source))
        return value, None, checked
    value = evaluate(t["value"], run.names("median", source))
    mean = evaluate(t["value"], run.names("mean")) if source == "bdn" else None
    return value, mean, value


def target_missed(run, t):
    _, _, checked = target_figures(run, t)
    return t["limit"] is not None and checked is not None and checked > t["limit"]


def ratios_table(run):
    """The targets against this run's figures; verdicts use the median."""
    out = ["| ratio | median | mean | target | verdict |", "|---|---:|---:|---:|---|"]
    for t in TARGETS:
        value, mean, checked = target_figures(run, t)
        how = t.get("unit") or t.get("show")
        shown = show(value, how)
        if t.get("share_of"):
            shown += f" ({show(checked, '%')})"
        limit, verdict = "", ""
        if t["limit"] is not None:
            limit = limit_text(t) if how == "B" and not t.get("share_of") else "≤ " + limit_text(t)
            verdict = ("not measurable (a baseline measured as 0)" if checked is None
                       else "met" if checked <= t["limit"] else "**missed**")
        out.append(f"| {t['label']} | {shown} | {'' if mean is None else show(mean, how)} | {limit} | {verdict} |")
    return "\n".join(out)


def launch_spread(run):
    """(benchmark, spread) of the widest per-launch spread among SPREAD_OF, or None."""
    spreads = {n: (max(v) - min(v)) / min(v) for n, v in run.launches.items()
               if n in SPREAD_OF and len(v) > 1 and None not in v and min(v) > 0}
    if not spreads:
        return None
    worst = max(spreads, key=spreads.get)
    return worst, spreads[worst]


def launches_table(run):
    width = max((len(v) for v in run.launches.values()), default=0)
    out = ["| benchmark | " + " | ".join(f"launch {i + 1}" for i in range(width)) + " |",
           "|---|" + "---:|" * width]
    for name, values in run.launches.items():
        out.append(f"| {name} | " + " | ".join(fmt(v) for v in values) + " |")
    return "\n".join(out)


def rounds_table(run):
    """The interleaved request rounds, one row each."""
    out = ["| round | Request ns | RequestThreadContext ns | ratio | Request B | RequestThreadContext B |",
           "|---:|---:|---:|---:|---:|---:|"]
    for number_, modes in sorted(run.inter["rounds"].items()):
        plain, tc = modes.get("Request", (None, None)), modes.get("RequestThreadContext", (None, None))
        ratio = tc[0] / plain[0] if plain[0] and tc[0] is not None else None
        out.append(f"| {number_ + 1} | {fmt(plain[0], 0)} | {fmt(tc[0], 0)} | {fmt(ratio, 3)} | "
                   f"{fmt(plain[1], 0)} | {fmt(tc[1], 0)} |")
    return "\n".join(out)


def figures(run):
    """Named single figures that are no expression over benchmark medians ({{fig:NAME}})."""
    inter = run.inter
    lo, hi = inter["ratio_range"]
    spread = launch_spread(run)
    requests = inter["requests"]
    added = inter["alloc"]["RequestThreadContext"] - inter["alloc"]["Request"]
    return {
        "rounds": str(len(inter["rounds"])),
        "requests_per_round": "n/a" if requests is None else f"{requests:,}",
        "request_ns": fmt(inter["ns"]["Request"], 0),
        "request_thread_context_ns": fmt(inter["ns"]["RequestThreadContext"], 0),
        "request_bytes": fmt(inter["alloc"]["Request"], 0),
        "request_thread_context_bytes": fmt(inter["alloc"]["RequestThreadContext"], 0),
        "round_ratio": fmt(inter["ratio"], 3),
        "round_ratio_min": fmt(lo, 3),
        "round_ratio_max": fmt(hi, 3),
        "request_added_bytes": fmt(added, 0),
        "request_added_pct": fmt(added / inter["alloc"]["Request"] * 100 if inter["alloc"]["Request"] else None, 1),
        "request_added_time_pct": fmt(None if inter["ratio"] is None else (inter["ratio"] - 1) * 100, 1),
        "spread_benchmark": spread[0] if spread else "n/a",
        "spread": fmt(spread[1] * 100, 0) if spread else "n/a",
    }


# ---- the template ----

class TemplateError(Exception):
    pass


# {{name}}, {{name:argument}}, {{if condition}}, {{else}}, {{end}}, {{# comment}}
TAG = re.compile(r"\{\{(.*?)\}\}", re.S)


def blocks(run):
    """The placeholders that stand for a whole block of data ({{NAME}})."""
    return {
        "run": lambda: run_block(run),
        "environment": lambda: run.env,
        "ratios_table": lambda: ratios_table(run),
        "write_table": lambda: run.tables[WRITE],
        "activity_table": lambda: run.tables[ACTIVITY],
        "request_table": lambda: run.tables[REQUESTS],
        "design_table": lambda: run.tables[DESIGN],
        "rounds_table": lambda: rounds_table(run),
        "launches_table": lambda: launches_table(run),
        "native_table": lambda: run.native,
        "disassembly": lambda: listing(run),
    }


def listing(run):
    if not run.jit:
        raise TemplateError("no DirectWrite listing in this run: put {{disassembly}} under {{if disassembly}}")
    return run.jit


def target(ident):
    ids = {t["id"]: t for t in TARGETS}
    if ident not in ids:
        raise TemplateError(f"unknown target `{ident}` (known: {', '.join(ids)})")
    return ids[ident]


def limit_text(t):
    """A target's limit as the table and the prose quote it."""
    if t.get("share_of") or t.get("show") == "%":
        return f"{t['limit'] * 100:g} %"
    return f"{t['limit']:g} B" if t.get("unit") == "B" else f"{t['limit']:g}"


def value(run, kind, arg):
    """{{median:EXPR}} (ns, 2 decimals), {{median%:EXPR}} (a fraction in %), {{bytes:EXPR}},
    {{fig:NAME}}, {{limit:TARGET_ID}}."""
    if kind == "limit":
        return limit_text(target(arg))
    if kind == "fig":
        figs = figures(run)
        if arg not in figs:
            raise TemplateError(f"unknown figure {{{{fig:{arg}}}}} (known: {', '.join(figs)})")
        return figs[arg]
    if kind == "median":
        return fmt(evaluate(arg, run.names("median")))
    if kind == "median%":
        v = evaluate(arg, run.names("median"))
        return fmt(None if v is None else v * 100, 1)
    if kind == "bytes":
        return fmt(evaluate(arg, run.names("alloc")), 0)
    raise TemplateError(f"unknown placeholder kind `{kind}:`")


COMPARISON = re.compile(r"^(median|bytes):(.+?)\s*(>=|<=|>|<)\s*(-?[\d.]+|limit:\S+)$")


def condition(run, text):
    """{{if ...}}: `A or B`, `not A`; A one of busy, disassembly, tls_get_addr, tls_elsewhere,
    launches, spread, zero:BENCHMARK, missed:TARGET_ID, missed:any, median:EXPR > N, bytes:EXPR > N."""
    text = text.strip()
    if " or " in text:
        return any(condition(run, part) for part in text.split(" or "))
    if text.startswith("not "):
        return not condition(run, text[4:])
    simple = {
        "busy": lambda: cpu_use(run.meta)[2] >= BUSY_SHARE,
        "disassembly": lambda: bool(run.jit),
        "tls_get_addr": lambda: run.tls_call is True,
        "tls_elsewhere": lambda: run.tls_call is False,
        "launches": lambda: bool(run.launches),
        "spread": lambda: launch_spread(run) is not None,
    }
    if text in simple:
        return simple[text]()
    if text.startswith("zero:"):
        name = text[5:]
        if name not in run.rows:
            raise TemplateError(f"unknown benchmark in {{{{if {text}}}}}")
        return name in run.zero
    if text == "missed:any":
        return any(target_missed(run, t) for t in TARGETS)
    if text.startswith("missed:"):
        return target_missed(run, target(text[7:]))
    m = COMPARISON.match(text)
    if m:
        kind, expr, op, limit = m.groups()
        v = evaluate(expr, run.names("median" if kind == "median" else "alloc"))
        limit = target(limit[6:])["limit"] if limit.startswith("limit:") else limit
        ops = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}
        return v is not None and ops[op](v, float(limit))
    raise TemplateError(f"unknown condition {{{{if {text}}}}}")


# A line holding only control tags ({{if}}, {{else}}, {{end}}, {{# comment}}) leaves no line behind.
CONTROL_LINE = re.compile(r"^[ \t]*((?:\{\{(?:if [^}]*|else|end|#[^}]*)\}\}[ \t]*)+)\n", re.M)


def tokens(template):
    """The template as text and tag tokens."""
    template = CONTROL_LINE.sub(lambda m: m.group(1).strip(), template)
    out, pos = [], 0
    for m in TAG.finditer(template):
        out.append(("text", template[pos:m.start()]))
        out.append(("tag", m.group(1).strip()))
        pos = m.end()
    out.append(("text", template[pos:]))
    return out


def render(template, run):
    """The template with every placeholder filled. Both sides of every {{if}} are checked (so a
    typo fails whichever way this run went); only the taken side is kept. TemplateError on
    anything it cannot fill."""
    data = blocks(run)
    items = tokens(template)
    i = 0

    def block(stop, live):
        nonlocal i
        out = []
        while i < len(items):
            kind, body = items[i]
            i += 1
            if kind == "text":
                if "{{" in body or "}}" in body:
                    raise TemplateError(f"unbalanced braces near: {body.strip()[:60]!r}")
                out.append(body)
            elif body.startswith("#"):
                continue
            elif body in stop:
                return "".join(out), body
            elif body in ("else", "end"):
                raise TemplateError(f"{{{{{body}}}}} without {{{{if}}}}")
            elif body.startswith("if "):
                taken = condition(run, body[3:])
                yes, closer = block(("else", "end"), live and taken)
                no = ""
                if closer == "else":
                    no, closer = block(("end",), live and not taken)
                if closer != "end":
                    raise TemplateError(f"{{{{{body}}}}} without {{{{end}}}}")
                out.append(yes if taken else no)
            elif body in data:
                out.append(data[body]() if live else "")
            elif ":" in body:
                out.append(value(run, *body.split(":", 1)))
            else:
                raise TemplateError(f"unknown placeholder {{{{{body}}}}}")
        if stop:
            return "".join(out), None
        return "".join(out)

    return block((), True)


# ---- main ----

def run_meta(args):
    """The run's facts from bench.sh, saved next to the results; or read back for --render-from."""
    path = os.path.join(args.results, "run.json")
    if args.render_from:
        if not os.path.exists(path):
            fail(f"{path} not found: render from a folder bench.sh wrote (it saves the run's facts there)")
        return json.load(open(path))
    missing = [name for name in ("native_library", "started", "load_before", "load_after",
                                 "cpu_before", "cpu_after", "own_cpu_seconds")
               if getattr(args, name) is None]
    if missing:
        fail("missing " + ", ".join("--" + n.replace("_", "-") for n in missing) + " (or use --render-from)")
    meta = {
        "started": args.started,
        "commit": commit(),
        "machine": machine(),
        "native_library": os.path.relpath(args.native_library),
        "load_before": args.load_before,
        "load_after": args.load_after,
        "cpu_before": args.cpu_before,
        "cpu_after": args.cpu_after,
        "own_cpu_seconds": args.own_cpu_seconds,
        "clock_ticks": os.sysconf("SC_CLK_TCK"),
    }
    with open(path, "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", help="the results folder bench.sh wrote")
    parser.add_argument("--render-from", metavar="DIR",
                        help="render the full report from a results folder and its run.json")
    parser.add_argument("--template", default=TEMPLATE)
    parser.add_argument("--native-library")
    parser.add_argument("--started")
    parser.add_argument("--load-before")
    parser.add_argument("--load-after")
    parser.add_argument("--cpu-before", help="busy and total jiffies from /proc/stat")
    parser.add_argument("--cpu-after")
    parser.add_argument("--own-cpu-seconds", type=float, help="CPU time the BenchmarkDotNet process used")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if bool(args.results) == bool(args.render_from):
        fail("give exactly one of --results and --render-from")
    args.results = args.results or args.render_from

    run = Run(args.results, run_meta(args))
    if args.smoke:
        print("# Benchmark smoke run\n")
        print("Every benchmark ran once (BenchmarkDotNet dry job); these figures measure nothing.\n")
        print("\n\n".join(run.tables[cls] for cls in (WRITE, ACTIVITY, REQUESTS, DESIGN))
              + f"\n\ninterleaved requests:\n\n{rounds_table(run)}\n\n" + run.native)
        return
    try:
        print(render(open(args.template).read(), run).rstrip("\n"))
    except TemplateError as e:
        fail(f"{args.template}: {e}")


if __name__ == "__main__":
    main()
