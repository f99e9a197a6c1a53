#!/usr/bin/env python3
"""Checks what otel-ctx-dump read from the .NET sample service against the spans it exported.
usage: check-sample-spans.py [--resource RESOURCE.json] SPANS_FILE DUMP.json [DUMP.json ...]
SPANS_FILE: a span a line, TRACE_ID SPAN_ID FLAGS START END KIND NAME (epoch seconds); each
DUMP.json (`otel-ctx-dump --json PID`) has a DUMP.time, the wall clock before and after the read.
Every span a thread shows must be an exported one with its trace id and flags, running during the
read, and a handler span carries its route; with --resource, every read's process context is that
resource exactly, value types included. Exits 1 if a read does not check out or none showed a span.
"""
import json
import sys

SLACK = 0.05  # clock slack between the service's span times and the script's, in seconds
ROUTES = {"load order": "/orders/{id}", "search": "/search"}  # samples/dotnet/Program.cs


def same(a, b):
    """Equal values of the same JSON types (True is not 1, 1 is not 1.0), arrays element-wise."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def problem(t, attrs, exported, read_start, read_end):
    """What is wrong with thread record `t` (None when it checks out)."""
    if t["span_id"] not in exported:
        return "NOT a span the service exported"
    trace, flags, kind, name, start, end = exported[t["span_id"]]
    if trace != t["trace_id"]:
        return f"exported with trace id {trace}"
    if flags != t["flags"]:
        return f"exported with flags {flags:02x}"
    if name in ROUTES and attrs.get("http.route") != ROUTES[name]:
        return f"route should be {ROUTES[name]}"
    if end < read_start - SLACK or start > read_end + SLACK:
        return (f"stale: the span ran {start - read_start:+.3f}s..{end - read_start:+.3f}s"
                " from the start of the read, not during it")
    return None


def main(args):
    resource = None
    if args[:1] == ["--resource"] and len(args) > 1:
        resource = json.load(open(args[1], encoding="utf-8"))
        args = args[2:]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    exported = {}
    for line in open(args[0], encoding="utf-8"):
        parts = line.rstrip("\n").split(" ", 6)
        if len(parts) == 7:
            trace, span, flags, start, end, kind, name = parts
            exported[span] = (trace, int(flags, 16), kind, name, float(start), float(end))
    print(f"exported spans logged by the service: {len(exported)}")

    reads, good, bad, seen = 0, 0, [], set()
    for n, path in enumerate(args[1:], 1):
        dump = json.load(open(path, encoding="utf-8"))
        read_start, read_end = map(float, open(path[: -len(".json")] + ".time", encoding="utf-8").read().split())
        threads, ctx = dump["threads"], dump["process_context"]
        count = lambda state: sum(1 for t in threads if t.get("state") == state)
        published = ctx.get("resource", {}) if ctx.get("status") == "present" else {}
        print(f"read {n}: {len(threads)} threads, {count('active')} running a span, {count('idle')} with no span,"
              f" {count('being_updated')} being updated; service.name={published.get('service.name')!r},"
              f" key map {ctx.get('attribute_key_map')}")
        if resource is not None:
            diffs = [f"{key}: published {published.get(key, '(nothing)')!r}, exported {resource.get(key, '(nothing)')!r}"
                     for key in sorted(set(published) | set(resource))
                     if key not in published or key not in resource or not same(published[key], resource[key])]
            bad.extend(f"read {n} process context: {d}" for d in diffs)
            print(f"  process context: MISMATCH with the exported resource: {'; '.join(diffs)}" if diffs else
                  f"  process context: the exported resource, all {len(resource)} attributes equal"
                  f" (service.instance.id {published.get('service.instance.id')})")
        for t in (t for t in threads if t.get("state") == "active"):
            reads += 1
            attrs = {a["key"] or f"#{a['index']}": a["value"] for a in t["attributes"]}
            span = t["span_id"]
            if wrong := problem(t, attrs, exported, read_start, read_end):
                bad.append(f"read {n} tid {t['tid']} span {span}: {wrong}")
                verdict = f"MISMATCH: {wrong}"
            else:
                good, verdict = good + 1, f"exported as {exported[span][2]} '{exported[span][3]}'"
                seen.add(span)
            shown = " ".join(f"{k}={v}" for k, v in attrs.items())
            print(f"  tid {t['tid']:<7} trace {t['trace_id']} span {span} flags {t['flags']:02x} {shown:<40} -> {verdict}")

    print(f"check: {reads} span reads in {len(args) - 1} dumps; {good} are spans the service exported"
          f" ({len(seen)} distinct), {len(bad)} are not")
    if bad or reads == 0:
        print("".join(f"  {b}\n" for b in bad) + ("check FAILED" if reads else "check FAILED: no span read"))
        return 1
    print("check passed: every span read from outside is a span the service exported, running at the time")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
