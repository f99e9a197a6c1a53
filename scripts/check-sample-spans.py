#!/usr/bin/env python3
"""Checks what otel-ctx-dump read from the .NET sample service against the spans it exported.

usage: check-sample-spans.py [--resource RESOURCE.json] SPANS_FILE DUMP.json [DUMP.json ...]

SPANS_FILE has one exported span per line: TRACE_ID SPAN_ID FLAGS START END KIND NAME (times in
seconds since the Unix epoch). Each DUMP.json is `otel-ctx-dump --json PID` output taken while
the service ran; DUMP.time next to it holds the wall-clock seconds before and after that read.
Every thread record that shows a span must name a span the service exported, with the same trace
id and flags; the span must have been running during the read (a thread still showing a span that
had ended would be a stale record); and the service's own handler spans must carry their route
attribute. With --resource (the Resource the service exported its spans with, as JSON), the
process context of every read must carry exactly that resource: the same attributes, values and
value types, service.instance.id included. Prints each span read and a summary; exits 1 if any read
does not check out or if no read showed a span at all.
"""
import json
import sys

# Clock slack between the service's span times and the script's, in seconds.
SLACK = 0.05

# The route each handler span publishes (samples/dotnet/Program.cs).
ROUTES = {"load order": "/orders/{id}", "search": "/search"}


def same(a, b):
    """Equal values of the same JSON types (True is not 1, 1 is not 1.0), arrays element-wise."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def resource_differences(published, exported):
    """Every way the published resource differs from the exported one, attribute by attribute."""
    out = []
    for key in sorted(set(published) | set(exported)):
        if key not in published:
            out.append(f"{key}: exported as {exported[key]!r}, not published")
        elif key not in exported:
            out.append(f"{key}: published as {published[key]!r}, not exported")
        elif not same(published[key], exported[key]):
            out.append(f"{key}: published {published[key]!r}, exported {exported[key]!r}")
    return out


def main(argv):
    resource = None
    if len(argv) > 2 and argv[1] == "--resource":
        with open(argv[2], encoding="utf-8") as f:
            resource = json.load(f)
        argv = argv[:1] + argv[3:]
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    exported = {}
    with open(argv[1], encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 6)
            if len(parts) == 7:
                trace, span, flags, start, end, kind, name = parts
                exported[span] = (trace, int(flags, 16), kind, name, float(start), float(end))
    print(f"exported spans logged by the service: {len(exported)}")

    reads = good = 0
    bad = []
    seen = set()
    for n, path in enumerate(argv[2:], 1):
        with open(path, encoding="utf-8") as f:
            dump = json.load(f)
        with open(path[: -len(".json")] + ".time", encoding="utf-8") as f:
            read_start, read_end = (float(x) for x in f.read().split())
        threads = dump["threads"]
        active = [t for t in threads if t.get("state") == "active"]
        idle = sum(1 for t in threads if t.get("state") == "idle")
        updating = sum(1 for t in threads if t.get("state") == "being_updated")
        ctx = dump["process_context"]
        service = dict(ctx.get("resource", {})).get("service.name") if ctx.get("status") == "present" else None
        print(f"read {n}: {len(threads)} threads, {len(active)} running a span, {idle} with no span,"
              f" {updating} being updated; service.name={service!r}, key map {ctx.get('attribute_key_map')}")
        if resource is not None:
            published = ctx.get("resource", {}) if ctx.get("status") == "present" else {}
            diffs = resource_differences(published, resource)
            if diffs:
                bad.extend(f"read {n} process context: {d}" for d in diffs)
                print(f"  process context: MISMATCH with the exported resource: {'; '.join(diffs)}")
            else:
                print(f"  process context: the exported resource, all {len(resource)} attributes equal"
                      f" (service.instance.id {published.get('service.instance.id')})")
        for t in active:
            reads += 1
            attrs = {a["key"] or f"#{a['index']}": a["value"] for a in t["attributes"]}
            shown = " ".join(f"{k}={v}" for k, v in attrs.items())
            span = t["span_id"]
            problem = None
            if span not in exported:
                problem = "NOT a span the service exported"
            else:
                trace, flags, kind, name, start, end = exported[span]
                if trace != t["trace_id"]:
                    problem = f"exported with trace id {trace}"
                elif flags != t["flags"]:
                    problem = f"exported with flags {flags:02x}"
                elif name in ROUTES and attrs.get("http.route") != ROUTES[name]:
                    problem = f"route should be {ROUTES[name]}"
                elif end < read_start - SLACK or start > read_end + SLACK:
                    problem = (f"stale: the span ran {start - read_start:+.3f}s..{end - read_start:+.3f}s"
                               " from the start of the read, not during it")
            verdict = f"exported as {exported[span][2]} '{exported[span][3]}'" if span in exported else ""
            if problem:
                bad.append(f"read {n} tid {t['tid']} span {span}: {problem}")
                verdict = f"MISMATCH: {problem}"
            else:
                good += 1
                seen.add(span)
            print(f"  tid {t['tid']:<7} trace {t['trace_id']} span {span} flags {t['flags']:02x} {shown:<40} -> {verdict}")

    print(f"check: {reads} span reads in {len(argv) - 2} dumps; {good} are spans the service exported"
          f" ({len(seen)} distinct), {len(bad)} are not")
    for b in bad:
        print(f"  {b}")
    if bad:
        return 1
    if reads == 0:
        print("check FAILED: no thread was read while running a span")
        return 1
    print("check passed: every span read from outside is a span the service exported, running at the time")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
