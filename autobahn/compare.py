#!/usr/bin/env python3
"""compare.py EXPECTED ACTUAL_INDEX [--sections=LO-HI] [--write]

Compares an Autobahn fuzzingclient report (index.json) with the committed expected
results: for every case, the verdict ("behavior") and the closing-handshake verdict
("behaviorClose") must be the same. Prints every difference and exits 1 if there is
any. --sections=1-10 compares only the expected cases of those sections (a run that
left the others out). With --write, records ACTUAL as the new EXPECTED instead.
"""
import json
import sys


def load_results(index_path):
    index = json.load(open(index_path))
    if len(index) != 1:
        sys.exit("compare.py: expected one agent in %s, found %s" % (index_path, list(index)))
    (cases,) = index.values()
    return {case: {"behavior": r["behavior"], "behaviorClose": r["behaviorClose"]}
            for case, r in cases.items()}


def case_key(case_id):
    return tuple(int(x) for x in case_id.split("."))


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.stderr.write(__doc__)
        return 2
    expected_path, actual_path = args
    actual = load_results(actual_path)
    if "--write" in argv:
        with open(expected_path, "w") as f:
            json.dump(dict(sorted(actual.items(), key=lambda kv: case_key(kv[0]))), f, indent=1)
            f.write("\n")
        print("compare.py: wrote %d cases to %s" % (len(actual), expected_path))
        return 0
    expected = json.load(open(expected_path))
    for arg in argv[1:]:
        if arg.startswith("--sections="):
            lo, hi = (int(x) for x in arg.split("=", 1)[1].split("-"))
            expected = {c: r for c, r in expected.items() if lo <= case_key(c)[0] <= hi}
    diffs = []
    for case in sorted(set(expected) | set(actual), key=case_key):
        e, a = expected.get(case), actual.get(case)
        if e != a:
            diffs.append("  %-8s expected %s, got %s" % (case, e, a))
    if diffs:
        print("compare.py: %d case(s) differ from %s:" % (len(diffs), expected_path))
        print("\n".join(diffs))
        return 1
    print("compare.py: all %d cases match %s" % (len(expected), expected_path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
