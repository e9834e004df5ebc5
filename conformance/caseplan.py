"""Split the Autobahn|Testsuite cases into the groups that scripts/conformance runs.

Runs under wstest's own Python 2.7 (``wstest-python caseplan.py ...``) so the case list
and the pattern matching are exactly wstest's.  Prints a JSON list of groups:

    [{"name": "1-7", "patterns": ["1.*", ..., "7.*"], "cases": ["1.1.1", ...]}, ...]

``patterns`` go into the spec's "cases"; ``cases`` is what the spec resolves to (the
expected case ids: a case missing from a report counts as failed).

    --mode quick   every case except 12.* and 13.*, plus 12.1.1-12.1.7, 12.2.1-12.2.7,
                   13.1.1-13.1.7 and 13.2.1-13.2.7 (the small-message deflate cases)
    --mode full    every case ("*"); 12.* and 13.* are split by sub-category
    --no-deflate   leave out 12.* and 13.* (permessage-deflate) entirely
"""
from __future__ import print_function

import argparse
import json

from autobahntestsuite.case import (Cases, CaseSetname, CaseBasename, CaseCategories,
                                    CaseSubCategories)
from autobahntestsuite.caseset import CaseSet

QUICK_DEFLATE = ["%s.%d" % (sub, n) for sub in ("12.1", "12.2") for n in range(1, 8)] + \
                ["%s.%d" % (sub, n) for sub in ("13.1", "13.2") for n in range(1, 8)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["quick", "full"], default="quick")
    parser.add_argument("--no-deflate", action="store_true")
    args = parser.parse_args()

    caseset = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
    every = caseset.parseSpecCases({"cases": ["*"]})

    def key(case_id):
        major = int(case_id.split(".")[0])
        if major <= 7:
            return "1-7"
        if major in (12, 13) and args.mode == "full":
            return ".".join(case_id.split(".")[:2])      # 12.1 ... 13.7
        return str(major)

    groups = []          # ordered as the cases are
    by_name = {}
    for case_id in every:
        major = int(case_id.split(".")[0])
        if major in (12, 13):
            if args.no_deflate:
                continue
            if args.mode == "quick" and case_id not in QUICK_DEFLATE:
                continue
        name = key(case_id)
        if name not in by_name:
            by_name[name] = {"name": name, "patterns": [], "cases": []}
            groups.append(by_name[name])
        by_name[name]["cases"].append(case_id)

    for group in groups:
        if args.mode == "quick" and group["name"] in ("12", "13"):
            group["patterns"] = list(group["cases"])
        else:
            # one "N.*" / "N.M.*" pattern per (sub-)category in the group
            depth = 2 if group["name"].count(".") else 1
            prefixes = []
            for case_id in group["cases"]:
                prefix = ".".join(case_id.split(".")[:depth])
                if prefix not in prefixes:
                    prefixes.append(prefix)
            group["patterns"] = [p + ".*" for p in prefixes]
        resolved = caseset.parseSpecCases({"cases": group["patterns"]})
        if resolved != group["cases"]:
            raise SystemExit("caseplan: patterns of group %s do not resolve to its cases"
                             % group["name"])
    print(json.dumps(groups))


if __name__ == "__main__":
    main()
