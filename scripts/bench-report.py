#!/usr/bin/env python3
"""Writes docs/benchmarks.md (to stdout) from the results folder of one run of scripts/bench.sh:
docs/benchmarks-template.md with its placeholders (listed at its head) filled from the run. An
unknown or unfilled placeholder, or a missing benchmark row, fails. The run's facts (KEY=VALUE
from bench.sh) are saved to RESULTS/run.json; without them the report renders from that file.
"""

import argparse
import collections
import csv
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACTS = ["started", "native_library", "load_before", "load_after", "cpu_before", "cpu_after", "own_cpu_seconds"]
# BenchmarkDotNet class: its table's placeholder and the benchmarks it must report.
CLASSES = {
    "WriteBenchmarks": ("write_table", ["RawStores", "RawStoresThreadStatic", "DirectWrite",
                                        "DirectWriteActivityIds", "PInvokeUpdate",
                                        "PInvokeUpdateSuppressGCTransition", "DirectWriteFullFence"]),
    "ActivityBenchmarks": ("activity_table", ["ActivityStartStop", "ActivityStartStopTracked",
                                              "ActivityStartStopLocalOnly", "AsyncFlow", "AsyncFlowTracked"]),
    "AspNetCoreRequestBenchmarks": ("request_table", ["Request", "RequestThreadContext"]),
    "AsyncLocalDesignBenchmarks": ("design_table", ["Nothing", "EventOnly", "NotifyingLocalPerChange",
                                                    "PlainLocalPerChange", "BoxPerRootSpan"]),
}
# A target: `expr` over benchmark medians (allocated bytes when `how` is B; interleaved_MODE and
# round_ratio are the interleaved request rounds), shown as x3 (3 decimals), % or B. Met when the
# value (its share of `share_of`, if set) <= limit; limit None: for reference.
Target = collections.namedtuple("Target", "id label how expr limit share_of", defaults=[None])
TARGETS = [
    Target("DirectWrite/PInvokeUpdate", "DirectWrite / PInvokeUpdate", "x3", "DirectWrite / PInvokeUpdate", 0.25),
    Target("DirectWrite/PInvokeUpdateSuppressGCTransition", "DirectWrite / PInvokeUpdateSuppressGCTransition",
           "x3", "DirectWrite / PInvokeUpdateSuppressGCTransition", 0.5),
    Target("DirectWrite/RawStores", "DirectWrite / RawStores", "x3", "DirectWrite / RawStores", 2.0),
    Target("tracker", "ActivityStartStopTracked / ActivityStartStop − 1 (tracker overhead per start/stop pair)",
           "%", "ActivityStartStopTracked / ActivityStartStop - 1", 0.15),
    Target("flow", "AsyncFlowTracked / AsyncFlow − 1 (tracker overhead per async flow, for reference)",
           "%", "AsyncFlowTracked / AsyncFlow - 1", None),
    Target("DirectWrite/RawStoresThreadStatic", "DirectWrite / RawStoresThreadStatic (for reference: the "
           "floor of a writer that finds its thread's record)", "x2", "DirectWrite / RawStoresThreadStatic", None),
    Target("DirectWrite-bytes", "bytes allocated per DirectWrite", "B", "DirectWrite", 0),
    Target("tracker-bytes", "bytes the tracker adds per Activity switch (half a start/stop pair)", "B",
           "(ActivityStartStopTracked - ActivityStartStop) / 2", 0),
    Target("request", "AddThreadContext's time per ASP.NET Core request (interleaved rounds: median of the "
           "per-round ratios − 1)", "%", "round_ratio - 1", 0.02),
    Target("request-bytes", "AddThreadContext's bytes per ASP.NET Core request (interleaved)", "B",
           "interleaved_RequestThreadContext - interleaved_Request", 0.02, "interleaved_Request"),
]
# Benchmarks whose per-launch spread the report quotes (the ones the time targets divide).
SPREAD_OF = ["DirectWrite", "PInvokeUpdate", "PInvokeUpdateSuppressGCTransition",
             "ActivityStartStop", "ActivityStartStopTracked"]
BUSY_SHARE = 0.05  # other processes' share of the CPU time from which the run counts as busy
# median:EXPR, median%:EXPR, bytes:EXPR: the figures EXPR is over, a factor, decimals.
METRICS = {"median": ("median", 1, 2), "median%": ("median", 100, 1), "bytes": ("alloc", 1, 0)}


class TemplateError(Exception):
    pass


def fail(message):
    sys.exit(f"bench-report: {message}")


def read(results, pattern):
    """The file under `results` matching `pattern` ('' when there is none)."""
    paths = glob.glob(os.path.join(results, pattern))
    if len(paths) > 1:
        fail(f"more than one {pattern} under {results}")
    return open(paths[0], errors="replace").read() if paths else ""


def number(text):
    """A CSV cell: '1,234.5' -> 1234.5; '-' (BenchmarkDotNet's zero) -> 0; 'NA', '?', '' -> None."""
    text = text.strip()
    if text in ("", "NA", "?"):
        return None
    return 0.0 if text == "-" else float(text.replace(",", ""))


def output(*cmd):
    try:  # rstrip only: `git status --porcelain` lines may start with a space
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.rstrip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine():
    cpu = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in output("lscpu").splitlines())}
    get = lambda key: cpu.get(key, "?")
    text = (f"{get('Model name')}, {get('CPU(s)')} CPUs ({get('Socket(s)')} socket(s) × "
            f"{get('Core(s) per socket')} core(s) × {get('Thread(s) per core')} thread(s))")
    if cpu.get("Hypervisor vendor"):
        text += f", virtual machine ({cpu['Hypervisor vendor']})"
    return f"{text}; {platform.system()} {platform.release()}"


def commit():
    git = ("git", "-C", ROOT)
    sha, subject = output(*git, "rev-parse", "HEAD"), output(*git, "log", "-1", "--format=%s")
    dirty = output(*git, "status", "--porcelain", "--untracked-files=all", "--", "dotnet/OtelThreadContext",
                   "dotnet/benchmarks", "native", "bench", "Cargo.toml")
    text = f"`{sha}` ({subject})" if sha else "unknown (not a git checkout)"
    if dirty:
        text += ("; the working tree differed from it in these benchmarked sources: "
                 + ", ".join(f"`{line[3:]}`" for line in dirty.splitlines()))
    return text


def per_launch_medians(log):
    """{benchmark: [median ns/op of each launch]} from the WorkloadResult lines of BenchmarkDotNet's log."""
    medians, name, launch = {}, None, None
    for line in log.splitlines():
        if m := re.match(r"// Benchmark: \w+\.(\w+):", line):
            name = m.group(1)
        elif (m := re.match(r"// Launch: (\d+) / \d+", line)) and name:
            launch = int(m.group(1))
            medians.setdefault(name, {})[launch] = []
        elif (m := re.match(r"WorkloadResult\s+\d+: .*, ([\d.]+) (ns|us|ms)/op", line)) and name and launch:
            medians[name][launch].append(float(m.group(1)) * {"ns": 1, "us": 1e3, "ms": 1e6}[m.group(2)])
    return {n: [statistics.median(v) if v else None for _, v in sorted(by_launch.items())]
            for n, by_launch in medians.items()}


def disassembly(jit, method):
    """The last listing of `method` in the JIT's output (the measured code), if final tier."""
    mine = [text for text in jit.split("; Assembly listing for method ")
            if text.startswith(f"OtelThreadContext.Benchmarks.{method}")]
    if not mine or "(Tier1" not in mine[-1].splitlines()[0]:
        return ""
    head, *lines = mine[-1].splitlines()
    return "\n".join(["; " + head] + [l.rstrip() for l in lines if l.strip() and not l.lstrip().startswith(";")])


def evaluate(expr, names):
    """`expr` (Python: names, numbers, + - * /, comparisons) over `names`; None when a figure it
    needs is missing or a divisor is 0."""
    try:
        return eval(expr, {"__builtins__": {}}, names)
    except (TypeError, ZeroDivisionError):
        return None
    except (NameError, KeyError) as e:
        raise TemplateError(f"unknown name in `{expr}`: {e}") from None
    except SyntaxError:
        raise TemplateError(f"not an expression over benchmark names: `{expr}`") from None


def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def show(value, how):
    """x3/x2: that many decimals; %: a fraction as a percentage; B: bytes."""
    if how == "%":
        return fmt(None if value is None else value * 100, 1) + " %"
    return fmt(value, 0) + " B" if how == "B" else fmt(value, int(how[1:]))


def limit_text(t):
    if t.share_of or t.how == "%":
        return f"{t.limit * 100:g} %"
    return f"{t.limit:g} B" if t.how == "B" else f"{t.limit:g}"


def table(header, align, rows):
    return "\n".join([f"| {' | '.join(header)} |", "|" + "".join(a + "|" for a in align)]
                     + [f"| {' | '.join(row)} |" for row in rows])


class Run:
    """One run's results: the figures, and the values and flags the template names."""

    def __init__(self, results, meta):
        self.rows, self.values, env = {}, {}, None
        for cls, (placeholder, expected) in CLASSES.items():
            rows = {row["Method"]: {"mean": number(row["Mean [ns]"]), "median": number(row["Median [ns]"]),
                                    "alloc": number(row["Allocated [B]"])}
                    for row in csv.DictReader(read(results, f"bdn/results/*.{cls}-report.csv").splitlines())}
            if missing := [m for m in expected if m not in rows or rows[m]["mean"] is None]:
                fail(f"{cls}: no result for {', '.join(missing)} in {results}/bdn/results")
            self.rows.update(rows)
            export = read(results, f"bdn/results/*.{cls}-report-github.md").strip()
            if not (match := re.match(r"```\s*\n(.*?)\n```\s*\n(.*)", export, re.S)):
                fail(f"{cls}: no Markdown export of the expected layout in {results}/bdn/results")
            env = env or match.group(1).strip()  # WriteBenchmarks' (the first)
            self.values[placeholder] = match.group(2).strip()
        if "|" not in (native := read(results, "native.md").strip()):
            fail(f"no native harness table in {results}/native.md")
        log = read(results, "bdn.log")

        # The interleaved request rounds: per round and mode, ns and bytes per request.
        by_round = {}
        for row in csv.DictReader(read(results, "bdn/requests-interleaved.csv").splitlines()):
            by_round.setdefault(int(row["round"]), {})[row["mode"]] = (float(row["ns_per_request"]),
                                                                       float(row["bytes_per_request"]))
        modes = CLASSES["AspNetCoreRequestBenchmarks"][1]
        if missing := [m for m in modes if not any(m in r for r in by_round.values())]:
            fail(f"{results}/bdn/requests-interleaved.csv: no rounds of {', '.join(missing)}")
        self.inter = [{m: statistics.median(r[m][i] for r in by_round.values() if m in r) for m in modes}
                      for i in (0, 1)]  # medians of ns and of bytes per request
        ratios = [r["RequestThreadContext"][0] / r["Request"][0] for r in by_round.values() if len(r) == 2]
        self.round_ratio = statistics.median(ratios) if ratios else None
        rounds = []
        for i, r in sorted(by_round.items()):
            plain, tc = r.get("Request", (None, None)), r.get("RequestThreadContext", (None, None))
            ratio = tc[0] / plain[0] if plain[0] and tc[0] is not None else None
            rounds.append([str(i + 1), fmt(plain[0], 0), fmt(tc[0], 0), fmt(ratio, 3), fmt(plain[1], 0),
                           fmt(tc[1], 0)])
        per_mode = re.search(r"interleaved requests: \d+ rounds x (\d+) requests per mode", log)
        (ns, alloc), added = self.inter, self.inter[1]["RequestThreadContext"] - self.inter[1]["Request"]

        launches = per_launch_medians(log)
        spreads = {n: (max(v) - min(v)) / min(v) for n, v in launches.items()
                   if n in SPREAD_OF and len(v) > 1 and None not in v and min(v) > 0}
        spread = max(spreads.items(), key=lambda item: item[1]) if spreads else None
        width = max((len(v) for v in launches.values()), default=0)
        zero = {n for block in re.findall(r"^ZeroMeasurement\n((?:  .*\n)+)", log, re.M)
                for n in re.findall(r"^  \w+\.(\w+):", block, re.M)}
        self.jit = disassembly(read(results, "jit.txt"), "WriteBenchmarks:DirectWrite()")
        # Whether the listing's `call rax` goes to the address of __tls_get_addr the run logged.
        call = re.search(r"mov\s+rax, 0x([0-9A-Fa-f]+)\s*\n\s*call\s+rax", self.jit)
        logged = re.findall(r"__tls_get_addr is at 0x([0-9A-Fa-f]+)", log)
        tls_call = int(call.group(1), 16) == int(logged[-1], 16) if call and logged else None
        # CPU-seconds others used during the BenchmarkDotNet run, and the machine's.
        (busy0, total0), (busy1, total1) = ([int(x) for x in meta[k].split()] for k in ("cpu_before", "cpu_after"))
        machine_seconds = (total1 - total0) / meta["clock_ticks"]
        others = max(0.0, (busy1 - busy0) / meta["clock_ticks"] - float(meta["own_cpu_seconds"]))
        share = others / machine_seconds if machine_seconds > 0 else 0.0

        self.flags = {
            "busy": share >= BUSY_SHARE, "disassembly": bool(self.jit), "tls_get_addr": tls_call is True,
            "tls_elsewhere": tls_call is False, "launches": bool(launches), "spread": spread is not None,
            **{f"missed:{t.id}": self.missed(t) for t in TARGETS},
            **{f"zero:{name}": name in zero for name in self.rows},
        }
        self.values.update({
            **{fact: str(meta[fact]) for fact in ["commit", "machine"] + FACTS[:4]},
            "others_cpu_pct": f"{share * 100:.0f}",
            "others_cpu_seconds": f"{others:.0f}",
            "machine_cpu_seconds": f"{machine_seconds:.0f}",
            "own_cpu_seconds": f"{float(meta['own_cpu_seconds']):.0f}",
            "environment": env,
            "native_table": native,
            "disassembly": self.jit,
            "ratios_table": self.ratios_table(),
            "rounds_table": table(["round", "Request ns", "RequestThreadContext ns", "ratio", "Request B",
                                   "RequestThreadContext B"], ["---:"] * 6, rounds),
            "launches_table": table(["benchmark"] + [f"launch {i + 1}" for i in range(width)],
                                    ["---"] + ["---:"] * width,
                                    [[name] + [fmt(v) for v in values] for name, values in launches.items()]),
            "spread_benchmark": spread[0] if spread else "n/a",
            "spread": fmt(spread[1] * 100, 0) if spread else "n/a",
            "rounds": str(len(by_round)),
            "requests_per_round": f"{int(per_mode.group(1)):,}" if per_mode else "n/a",
            "request_ns": fmt(ns["Request"], 0),
            "request_thread_context_ns": fmt(ns["RequestThreadContext"], 0),
            "request_bytes": fmt(alloc["Request"], 0),
            "request_thread_context_bytes": fmt(alloc["RequestThreadContext"], 0),
            "round_ratio": fmt(self.round_ratio, 3),
            "round_ratio_min": fmt(min(ratios, default=None), 3),
            "round_ratio_max": fmt(max(ratios, default=None), 3),
            "request_added_bytes": fmt(added, 0),
            "request_added_pct": fmt(added / alloc["Request"] * 100 if alloc["Request"] else None, 1),
            "request_added_time_pct": fmt(None if self.round_ratio is None else (self.round_ratio - 1) * 100, 1),
            **{f"limit:{t.id}": limit_text(t) for t in TARGETS if t.limit is not None},
        })

    def names(self, metric):
        """Each benchmark's `metric` (median, mean or alloc), the interleaved figures and the limits."""
        names = {name: row[metric] for name, row in self.rows.items()}
        for mode, v in self.inter[metric == "alloc"].items():
            names["interleaved_" + mode] = None if metric == "mean" else v
        names["round_ratio"] = None if metric == "mean" else self.round_ratio
        names["limits"] = {t.id: t.limit for t in TARGETS}
        return names

    def target(self, t):
        """(value, mean-based value or None, the figure held against the limit)."""
        if t.how == "B":
            value = evaluate(t.expr, self.names("alloc"))
            checked = evaluate(f"({t.expr}) / {t.share_of}", self.names("alloc")) if t.share_of else value
            return value, None, checked
        value = evaluate(t.expr, self.names("median"))
        return value, evaluate(t.expr, self.names("mean")), value

    def missed(self, t):
        checked = self.target(t)[2]
        return t.limit is not None and checked is not None and checked > t.limit

    def ratios_table(self):
        rows = []
        for t in TARGETS:
            value, mean, checked = self.target(t)
            shown = show(value, t.how) + (f" ({show(checked, '%')})" if t.share_of else "")
            limit = verdict = ""
            if t.limit is not None:
                limit = ("" if t.how == "B" and not t.share_of else "≤ ") + limit_text(t)
                verdict = ("not measurable (a baseline measured as 0)" if checked is None
                           else "met" if checked <= t.limit else "**missed**")
            rows.append([t.label, shown, "" if mean is None else show(mean, t.how), limit, verdict])
        return table(["ratio", "median", "mean", "target", "verdict"], ["---", "---:", "---:", "---:", "---"], rows)

    def condition(self, text):
        """`A or B`, a flag, or median:EXPR / bytes:EXPR (a comparison; limit:ID is a target's limit)."""
        if " or " in text:
            return any(self.condition(part.strip()) for part in text.split(" or "))
        kind, _, expr = text.partition(":")
        if kind in ("median", "bytes"):
            return bool(evaluate(re.sub(r"limit:(\S+)", r"limits['\1']", expr), self.names(METRICS[kind][0])))
        if text not in self.flags:
            raise TemplateError(f"unknown condition {{{{if {text}}}}}")
        return self.flags[text]

    def value(self, body, live):
        """A placeholder's text (live is False in a branch not taken: checked, then dropped)."""
        if body == "disassembly" and live and not self.jit:
            raise TemplateError("no DirectWrite listing in this run: put {{disassembly}} under {{if disassembly}}")
        if body in self.values:
            return self.values[body]
        kind, _, expr = body.partition(":")
        if kind not in METRICS or not expr:
            raise TemplateError(f"unknown placeholder {{{{{body}}}}}")
        metric, factor, digits = METRICS[kind]
        v = evaluate(expr, self.names(metric))
        return fmt(None if v is None else v * factor, digits)


# {{name}}, {{name:argument}}, {{if condition}}, {{else}}, {{end}}, {{# comment}}
TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
# A line holding only control tags leaves no line behind.
CONTROL_LINE = re.compile(r"^[ \t]*((?:\{\{(?:if [^}]*|else|end|#[^}]*)\}\}[ \t]*)+)\n", re.M)
# An {{if}} with no {{if}} inside it.
INNER_IF = re.compile(r"\{\{if ([^}]*)\}\}((?:(?!\{\{if ).)*?)\{\{end\}\}", re.S)


def render(template, run):
    """The template filled in, innermost {{if}} first. The branch not taken is filled too (and
    dropped), so a typo fails whichever way this run went."""
    text = re.sub(r"\{\{#.*?\}\}", "", CONTROL_LINE.sub(lambda m: m.group(1).strip(), template), flags=re.S)
    if "{{" in TAG.sub("", text) or "}}" in TAG.sub("", text):
        raise TemplateError("unbalanced braces")
    fill = lambda text, live: TAG.sub(lambda m: run.value(m.group(1).strip(), live), text)

    def choose(m):
        yes, _, no = m.group(2).partition("{{else}}")
        taken = run.condition(m.group(1).strip())
        fill(no if taken else yes, False)
        return yes if taken else no

    while (step := INNER_IF.subn(choose, text))[1]:
        text = step[0]
    return fill(text, True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", help="the results folder bench.sh wrote")
    parser.add_argument("facts", nargs="*", metavar="KEY=VALUE", help=f"the run's facts from bench.sh: {FACTS}")
    parser.add_argument("--template", default=os.path.join(ROOT, "docs", "benchmarks-template.md"))
    args = parser.parse_args()
    path = os.path.join(args.results, "run.json")
    if args.facts:
        meta = dict(fact.split("=", 1) for fact in args.facts)
        if missing := [fact for fact in FACTS if fact not in meta]:
            fail(f"missing facts: {', '.join(missing)}")
        meta.update(commit=commit(), machine=machine(), clock_ticks=os.sysconf("SC_CLK_TCK"))
        with open(path, "w") as f:
            json.dump(meta, f, indent=1)
    elif not os.path.exists(path):
        fail(f"{path} not found: render from a folder bench.sh wrote (it saves the run's facts there)")
    run = Run(args.results, json.load(open(path)))
    try:
        print(render(open(args.template).read(), run).rstrip("\n"))
    except TemplateError as e:
        fail(f"{args.template}: {e}")


if __name__ == "__main__":
    main()
