#!/usr/bin/env python3
"""Checks what otel-ctx-dump read from the .NET sample service against what the service exported.
usage: check-sample-spans.py RUN
RUN (scripts/sample-dotnet.sh writes it): spans.txt, a span a line (TRACE_ID SPAN_ID FLAGS START END
KIND NAME, epoch seconds), resource.json (the exported Resource) and each read, dump-N.json
(`otel-ctx-dump --json PID`) with dump-N.time, the wall clock before and after it. Every span a
thread shows must be an exported one with its trace id and flags, running during the read, and a
handler span carries its route; every read's process context is the resource exactly, value types
included. Exits 1 if a read does not check out, none showed a span, or a control is accepted: the
same reads against the spans shifted 10 s back, against none, or another service.instance.id.
"""
import glob, json, sys

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


def check(exported, resource, reads, show=print):
    """The problems of `reads` ([(dump, start, end)]), the good span reads and all span reads' count."""
    bad, good, spans = [], [], 0
    for n, (dump, read_start, read_end) in enumerate(reads, 1):
        threads, ctx = dump["threads"], dump["process_context"]
        count = lambda state: sum(1 for t in threads if t.get("state") == state)
        published = ctx.get("resource", {}) if ctx.get("status") == "present" else {}
        show(f"read {n}: {len(threads)} threads, {count('active')} running a span, {count('idle')} with no span,"
             f" {count('being_updated')} being updated; service.name={published.get('service.name')!r},"
             f" key map {ctx.get('attribute_key_map')}")
        diffs = [f"{key}: published {published.get(key, '(nothing)')!r}, exported {resource.get(key, '(nothing)')!r}"
                 for key in sorted(set(published) | set(resource))
                 if key not in published or key not in resource or not same(published[key], resource[key])]
        bad.extend(f"read {n} process context: {d}" for d in diffs)
        show(f"  process context: MISMATCH with the exported resource: {'; '.join(diffs)}" if diffs else
             f"  process context: the exported resource, all {len(resource)} attributes equal"
             f" (service.instance.id {published.get('service.instance.id')})")
        for t in (t for t in threads if t.get("state") == "active"):
            spans += 1
            attrs = {a["key"] or f"#{a['index']}": a["value"] for a in t["attributes"]}
            span = t["span_id"]
            if wrong := problem(t, attrs, exported, read_start, read_end):
                bad.append(f"read {n} tid {t['tid']} span {span}: {wrong}")
                verdict = f"MISMATCH: {wrong}"
            else:
                good.append(span)
                verdict = f"exported as {exported[span][2]} '{exported[span][3]}'"
            shown = " ".join(f"{k}={v}" for k, v in attrs.items())
            show(f"  tid {t['tid']:<7} trace {t['trace_id']} span {span} flags {t['flags']:02x} {shown:<40} -> {verdict}")
    return bad, good, spans


def main(run):
    exported = {}
    for line in open(f"{run}/spans.txt", encoding="utf-8"):
        parts = line.rstrip("\n").split(" ", 6)
        if len(parts) == 7:
            trace, span, flags, start, end, kind, name = parts
            exported[span] = (trace, int(flags, 16), kind, name, float(start), float(end))
    print(f"exported spans logged by the service: {len(exported)}")
    resource = json.load(open(f"{run}/resource.json", encoding="utf-8"))
    reads = []
    for path in sorted(glob.glob(f"{run}/dump-*.json")):
        start, end = map(float, open(path[: -len(".json")] + ".time", encoding="utf-8").read().split())
        reads.append((json.load(open(path, encoding="utf-8")), start, end))

    bad, good, spans = check(exported, resource, reads)
    print(f"check: {spans} span reads in {len(reads)} dumps; {len(good)} are spans the service exported"
          f" ({len(set(good))} distinct), {len(bad)} are not")
    if bad or spans == 0:
        print("".join(f"  {b}\n" for b in bad) + ("check FAILED" if spans else "check FAILED: no span read"))
        return 1
    print("check passed: every span read from outside is a span the service exported, running at the time")

    # The check can fail: each control changes what the reads are checked against.
    shifted = {span: (*e[:4], e[4] - 10, e[5] - 10) for span, e in exported.items()}
    other = dict(resource, **{"service.instance.id": "otel-thread-ctx-dotnet-sample-0"})
    rejects = {what: check(log, res, reads, show=lambda _: None)[0] for what, log, res in [
        ("the span log shifted 10 s back", shifted, resource), ("an empty span log", {}, resource),
        ("another service.instance.id", exported, other)]}
    stale = sum(": stale:" in b for b in rejects["the span log shifted 10 s back"])
    accepted = [what for what, bad in rejects.items() if not bad]
    if accepted:
        print(f"control FAILED: the check accepted the reads against {', '.join(accepted)}")
        return 1
    print(f"controls: the same reads are rejected against a span log shifted 10 s back ({stale} stale reads),"
          " against an empty one, and against the resource with another service.instance.id")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]) if len(sys.argv) == 2 else __doc__)
