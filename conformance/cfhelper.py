"""Small helpers for scripts/conformance (Python 3, standard library only).

    cfhelper.py freeport [N]                      N free loopback TCP ports, one a line
    cfhelper.py wait-port PORT SECONDS [PID]      wait until 127.0.0.1:PORT accepts; fail
                                                  early if process PID has exited
    cfhelper.py render TEMPLATE OUT KEY=VALUE...  replace @KEY@ in TEMPLATE, write OUT
    cfhelper.py groups PLAN                       group names of a caseplan.py plan
    cfhelper.py patterns PLAN GROUP               the group's spec "cases" as JSON
    cfhelper.py count PLAN GROUP                  number of cases in the group
    cfhelper.py summarize DIR --direction D --relay R [--mode M] [--compression C]
                          [--wall SECONDS] [--print]
        reads DIR/plan.json, DIR/groups.tsv and DIR/<group>/index.json (wstest reports),
        writes DIR/summary.json; with --print, lists failed cases and prints the line
        "conformance <D>-side: N passed, N failed".  Exit status 1 if anything failed.
    cfhelper.py table BUILD_CONFORMANCE_DIR       9.* per-case durations, direct/nginx/wsrelay

A case passes when its behavior and behaviorClose are OK, NON-STRICT or INFORMATIONAL.
FAILED, UNIMPLEMENTED, a case missing from the report or a group whose wstest produced
no report count as failed.
"""
import json
import os
import re
import socket
import sys
import time

PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
RELAYS = ("direct", "nginx", "wsrelay")


def freeport(count=1):
    socks = []
    try:
        for _ in range(int(count)):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        for s in socks:
            print(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()


def _process_gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def wait_port(port, seconds, pid=None):
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
            return 0
        except OSError:
            pass
        if pid is not None and _process_gone(int(pid)):
            print("cfhelper: process %s exited before 127.0.0.1:%s was open" % (pid, port),
                  file=sys.stderr)
            return 2
        time.sleep(0.1)
    print("cfhelper: 127.0.0.1:%s not open after %ss" % (port, seconds), file=sys.stderr)
    return 1


def render(template, out, *pairs):
    with open(template) as f:
        text = f.read()
    for pair in pairs:
        key, _, value = pair.partition("=")
        text = text.replace("@%s@" % key, value)
    left = _placeholders(text)
    if left:
        raise SystemExit("cfhelper: unreplaced placeholder in %s: %s" % (template, sorted(left)))
    with open(out, "w") as f:
        f.write(text)


def _placeholders(text):
    return set(re.findall(r"@([A-Z_]+)@", text))


def _plan(path):
    with open(path) as f:
        return json.load(f)


def _group(plan, name):
    for group in _plan(plan):
        if group["name"] == name:
            return group
    raise SystemExit("cfhelper: no group %s in %s" % (name, plan))


def _shorten(value, limit=300):
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _read_groups_tsv(path):
    runs = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 3:
                    runs[parts[0]] = {"rc": int(parts[1]), "seconds": float(parts[2]),
                                      "note": parts[3] if len(parts) > 3 else ""}
    return runs


def summarize(directory, direction, relay, mode="quick", compression="on", wall=None,
              do_print=False):
    plan = _plan(os.path.join(directory, "plan.json"))
    runs = _read_groups_tsv(os.path.join(directory, "groups.tsv"))
    cases, failures, groups = {}, [], []
    for group in plan:
        name = group["name"]
        run = runs.get(name, {"rc": None, "seconds": None, "note": "not run"})
        outdir = os.path.join(directory, name)
        index_path = os.path.join(outdir, "index.json")
        results = {}
        if os.path.exists(index_path):
            try:
                with open(index_path) as f:
                    index = json.load(f)
                for agent_results in index.values():
                    results.update(agent_results)
            except ValueError as exc:
                run["note"] = (run["note"] + "; " if run["note"] else "") + \
                    "unreadable index.json: %s" % exc
        groups.append({"name": name, "cases": len(group["cases"]), "rc": run["rc"],
                       "seconds": run["seconds"], "note": run["note"],
                       "report": os.path.relpath(index_path, directory),
                       "reported": len(results)})
        for case_id in group["cases"]:
            res = results.get(case_id)
            if res is None:
                if run["rc"] is None:
                    why = "MISSING (group not run)"
                elif os.path.exists(index_path):
                    why = "MISSING (not in the report)"
                else:
                    why = "MISSING (no report; %s)" % (run["note"] or "exit %s" % run["rc"])
                entry = {"behavior": why, "behaviorClose": None, "duration": None,
                         "passed": False, "group": name}
            else:
                passed = (res.get("behavior") in PASSING
                          and res.get("behaviorClose") in PASSING)
                entry = {"behavior": res.get("behavior"),
                         "behaviorClose": res.get("behaviorClose"),
                         "duration": res.get("duration"),
                         "remoteCloseCode": res.get("remoteCloseCode"),
                         "passed": passed, "group": name}
                if not passed:
                    entry.update(_case_details(outdir, res.get("reportfile")))
            cases[case_id] = entry
            if not entry["passed"]:
                failures.append(case_id)
    passed = sum(1 for c in cases.values() if c["passed"])
    summary = {
        "direction": direction, "relay": relay, "mode": mode, "compression": compression,
        "wall_seconds": wall, "passed": passed, "failed": len(failures),
        "failed_cases": failures,
        "non_strict_cases": [k for k, v in cases.items() if "NON-STRICT" in
                             (v["behavior"], v["behaviorClose"])],
        "informational_cases": [k for k, v in cases.items() if "INFORMATIONAL" in
                                (v["behavior"], v["behaviorClose"])],
        "groups": groups,
        "durations_9_ms": {k: v["duration"] for k, v in cases.items()
                           if k.startswith("9.") and v["duration"] is not None},
        "cases": cases,
    }
    with open(os.path.join(directory, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if do_print:
        for group in plan:       # a group without a report: one line, not one per case
            missing = [k for k in group["cases"] if cases[k]["behavior"].startswith("MISSING")]
            if missing and len(missing) == len(group["cases"]):
                print("  failed %s-side group %s, all %d cases (%s .. %s): %s"
                      % (direction, group["name"], len(missing), missing[0], missing[-1],
                         cases[missing[0]]["behavior"]))
        for case_id in failures:
            c = cases[case_id]
            group = next(g for g in plan if g["name"] == c["group"])
            if all(cases[k]["behavior"].startswith("MISSING") for k in group["cases"]):
                continue
            detail = ""
            if c.get("result"):
                detail = ": " + _shorten(c["result"], 160)
            print("  failed %s-side %s: behavior=%s behaviorClose=%s%s"
                  % (direction, case_id, c["behavior"], c["behaviorClose"], detail))
        for label, key in (("NON-STRICT", "non_strict_cases"),
                           ("INFORMATIONAL", "informational_cases")):
            if summary[key]:
                print("  (passed, but %s on the %s side: %s)"
                      % (label, direction, " ".join(summary[key])))
        print("conformance %s-side: %d passed, %d failed" % (direction, passed, len(failures)))
    return 1 if failures or not cases else 0


def _case_details(outdir, reportfile):
    if not reportfile:
        return {}
    try:
        with open(os.path.join(outdir, reportfile)) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return {}
    return {key: _shorten(report.get(key), 600)
            for key in ("description", "expectation", "result", "resultClose")
            if report.get(key) is not None}


def _case_key(case_id):
    return tuple(int(x) for x in case_id.split("."))


def table(base):
    columns = []
    for direction in ("client", "origin"):
        for relay in RELAYS:
            path = os.path.join(base, relay, direction, "summary.json")
            if os.path.exists(path):
                with open(path) as f:
                    durations = json.load(f).get("durations_9_ms") or {}
                if durations:
                    columns.append(("%s/%s" % (relay, direction), durations))
    if not columns:
        return 0
    ids = sorted({k for _, d in columns for k in d}, key=_case_key)
    width = max(14, max(len(name) for name, _ in columns) + 2)
    print("9.* case durations in ms (from build/conformance/<relay>/<direction>/summary.json):")
    print("case    " + "".join(name.rjust(width) for name, _ in columns))
    for case_id in ids:
        print(case_id.ljust(8) + "".join(
            (str(d[case_id]) if case_id in d else "-").rjust(width) for _, d in columns))
    print("total   " + "".join(str(sum(d.values())).rjust(width) for _, d in columns))
    return 0


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "freeport":
        freeport(*args)
        return 0
    if cmd == "wait-port":
        return wait_port(*args)
    if cmd == "render":
        render(*args)
        return 0
    if cmd == "groups":
        print("\n".join(g["name"] for g in _plan(args[0])))
        return 0
    if cmd == "patterns":
        print(json.dumps(_group(args[0], args[1])["patterns"]))
        return 0
    if cmd == "count":
        print(len(_group(args[0], args[1])["cases"]))
        return 0
    if cmd == "summarize":
        import argparse
        p = argparse.ArgumentParser(prog="cfhelper.py summarize")
        p.add_argument("dir")
        p.add_argument("--direction", required=True)
        p.add_argument("--relay", required=True)
        p.add_argument("--mode", default="quick")
        p.add_argument("--compression", default="on")
        p.add_argument("--wall", type=float)
        p.add_argument("--print", dest="do_print", action="store_true")
        a = p.parse_args(args)
        return summarize(a.dir, a.direction, a.relay, a.mode, a.compression, a.wall,
                         a.do_print)
    if cmd == "table":
        return table(*args)
    print("cfhelper: unknown command %s" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
