#!/usr/bin/env python3
"""Checks that modules include only downward (docs/architecture.md, "Modules"):

    core  <-  config  <-  ingest | preprocess | store  <-  query  <-  serve  <-  app (and main.cpp)

A file of a module may include its own module's headers and those of modules below it; never a
module above it nor a peer (ingest, preprocess and store do not see each other: what they hand
each other is a port in include/sluice/core/ports/). A private header (src/<module>/...) may be
included only from its own module. Tests, benchmarks and fuzzers may include anything.

Usage: check_layers.py [--root DIR]   exit 0 when every include goes downward, 1 otherwise
       check_layers.py --self-test    proves the check fails on wrong includes and passes on right ones
"""
import argparse
import os
import re
import sys
import tempfile

RANK = {"core": 0, "config": 1, "ingest": 2, "preprocess": 2, "store": 2, "query": 3, "serve": 4, "app": 5}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module_of(rel):
    """The module a file under the root belongs to, or None (tests, bench, fuzz, ...)."""
    parts = rel.split(os.sep)
    if parts[:2] == ["include", "sluice"] and len(parts) > 3:
        return parts[2]
    if parts[0] == "src" and len(parts) > 2:
        return parts[1]
    if rel == os.path.join("src", "main.cpp"):
        return "app"
    return None


def may_use(user, used):
    if user == used:
        return True
    return RANK[used] < RANK[user]


def check(root):
    problems = []
    for top in ("include", "src"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith((".hpp", ".cpp", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                user = module_of(rel)
                if user is None:
                    continue
                if user not in RANK:
                    problems.append(f"{rel}: module '{user}' is not in the layer table of scripts/check_layers.py")
                    continue
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for number, line in enumerate(text.splitlines(), 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    target = m.group(1)
                    if target.startswith("sluice/"):
                        used_rel = os.path.join("include", target)
                    else:  # a private header, relative to the including file
                        used_rel = os.path.relpath(os.path.normpath(os.path.join(dirpath, target)), root)
                        if module_of(used_rel) is None and not used_rel.startswith(("src", "include")):
                            continue
                    used = module_of(used_rel)
                    if used is None:
                        continue
                    if used not in RANK:
                        problems.append(f"{rel}:{number}: includes {target} of unknown module '{used}'")
                    elif not target.startswith("sluice/") and used != user:
                        problems.append(f"{rel}:{number}: includes {target}, a private header of module '{used}'")
                    elif not may_use(user, used):
                        why = "a peer" if RANK[used] == RANK[user] else "a module above it"
                        problems.append(f"{rel}:{number}: module '{user}' includes {target} of '{used}', {why}")
    return problems


def self_test():
    def tree(files):
        d = tempfile.mkdtemp(prefix="layers-")
        for rel, text in files.items():
            path = os.path.join(d, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        return d

    good = {
        "include/sluice/core/record.hpp": "#pragma once\n",
        "include/sluice/config/config.hpp": '#include "sluice/core/record.hpp"\n',
        "include/sluice/store/store_writer.hpp": '#include "sluice/config/config.hpp"\n',
        "src/store/redis/resp.hpp": "#pragma once\n",
        "src/store/redis/redis_cache.cpp": '#include "resp.hpp"\n#include "sluice/store/store_writer.hpp"\n',
        "include/sluice/serve/services.hpp": '#include "sluice/store/store_writer.hpp"\n',
        "src/main.cpp": '#include "sluice/serve/services.hpp"\n',
    }
    wrong = [
        ("a store header includes ingest (a peer)", "include/sluice/store/bad.hpp", '#include "sluice/ingest/kafka_ingest.hpp"\n'),
        ("core includes config (above it)", "include/sluice/core/bad.hpp", '#include "sluice/config/config.hpp"\n'),
        ("config includes preprocess (above it)", "src/config/bad.cpp", '#include "sluice/preprocess/record_parser.hpp"\n'),
        ("serve includes app (above it)", "src/serve/bad.cpp", '#include "sluice/app/daemon.hpp"\n'),
        ("app includes a private header of store", "src/app/bad.cpp", '#include "../store/redis/resp.hpp"\n'),
    ]
    failures = 0
    if check(tree(good)):
        print("self-test: a tree whose includes all go downward was refused:", check(tree(good)))
        failures += 1
    for what, rel, text in wrong:
        files = dict(good)
        files[rel] = text
        found = check(tree(files))
        if not found:
            print(f"self-test: not caught: {what}")
            failures += 1
        else:
            print(f"self-test: caught: {what}: {found[0]}")
    print("self-test:", "ok" if not failures else f"{failures} failed")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    problems = check(os.path.abspath(args.root))
    for p in problems:
        print(p)
    print(f"check_layers: {len(problems)} include(s) against the module order" if problems else "check_layers: every include goes downward")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
