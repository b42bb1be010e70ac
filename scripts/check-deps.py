#!/usr/bin/env python3
"""Checks that a fresh Debian machine gets everything a build used from scripts/install-deps.sh.

A configured and built tree records every file from outside the repository it used: the CMake
scripts the configure step read (build.ninja's re-run rule), the paths it found (CMakeCache.txt),
every header each object included (`ninja -t deps`) and every library each link named
(build.ninja). Each such file is mapped to the Debian package that owns it (dpkg's file lists),
and each package must be one install-deps.sh lists, a hard dependency (Depends / Pre-Depends,
first alternative, as apt chooses on a fresh machine) of one it lists, or part of the base system
(Essential or Priority required). A package that is only installed here — by hand, or as a
Recommends — fails the check, naming the package and the files that need it. Files owned by no
package fail too, except under the CUDA toolkit (installed from NVIDIA, outside install-deps.sh;
scripts/test.sh skips the CUDA presets without it) and inside the repository or the build tree.
The binutils CMake looks up by preference (CMAKE_AR, CMAKE_LINKER, ...: llvm-ar and ld.lld when
LLVM is installed, else GNU binutils, which build-essential brings) are only noted: a fresh
machine builds with the fallback.

Usage: scripts/check-deps.py [--drop PKG]... BUILD_DIR...
  --drop PKG   check as if install-deps.sh did not list PKG (the check's own test: it must fail)
Exit status 0 when every file is accounted for, 1 otherwise.
"""

import argparse
import functools
import glob
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DPKG_INFO = "/var/lib/dpkg/info"


def canonical(path):
    """The path with its folders' symlinks resolved (usrmerge: /lib -> /usr/lib), the name kept."""
    d, name = os.path.split(path)
    return os.path.join(os.path.realpath(d), name)


def file_owners():
    """canonical path -> set of package names, from dpkg's per-package file lists."""
    owners = {}
    dirs = {}
    for lst in glob.glob(os.path.join(DPKG_INFO, "*.list")):
        pkg = os.path.basename(lst)[:-len(".list")].split(":")[0]
        with open(lst, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                p = line.rstrip("\n")
                d, name = os.path.split(p)
                if d not in dirs:
                    dirs[d] = os.path.realpath(d)
                owners.setdefault(os.path.join(dirs[d], name), set()).add(pkg)
    return owners


def installed_packages():
    """name -> dict(depends=[first alternatives], provides=[...], base=bool) of installed ones."""
    fmt = "${Package}\\t${Status}\\t${Depends}\\t${Pre-Depends}\\t${Provides}\\t${Essential}\\t${Priority}\\n"
    out = subprocess.run(["dpkg-query", "-W", "-f=" + fmt], check=True, capture_output=True,
                         text=True).stdout
    pkgs = {}
    for line in out.splitlines():
        name, status, dep, predep, provides, essential, priority = line.split("\t")
        if not status.endswith(" installed"):
            continue

        def names(field, first_only):
            res = []
            for group in filter(None, (g.strip() for g in field.split(","))):
                alts = [re.split(r"[\s(:]", a.strip())[0] for a in group.split("|")]
                res.extend(alts[:1] if first_only else alts)
            return res

        pkgs[name] = dict(depends=names(dep, True) + names(predep, True),
                          provides=names(provides, False),
                          base=essential == "yes" or priority == "required")
    return pkgs


def allowed_packages(listed, pkgs):
    """The packages a fresh machine has after install-deps.sh: the closure of the listed ones
    and the base system under hard dependencies (a virtual name stands for its providers)."""
    providers = {}
    for name, p in pkgs.items():
        for v in p["provides"]:
            providers.setdefault(v, set()).add(name)
    todo = list(listed) + [n for n, p in pkgs.items() if p["base"]]
    seen = set()
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in pkgs:
            todo.extend(pkgs[n]["depends"])
        todo.extend(providers.get(n, ()))
    return seen


def ninja_lines(build_dir):
    """build.ninja's logical lines ('$' line continuations joined)."""
    with open(os.path.join(build_dir, "build.ninja"), encoding="utf-8") as f:
        text = f.read()
    return text.replace("$\n", " ").splitlines()


def split_ninja_paths(text):
    return [p.replace("$ ", " ").replace("$:", ":") for p in re.split(r"(?<!\$) +", text) if p]


# Cache entries CMake fills from a list of candidate names with a fallback (CMakeFindBinUtils).
PREFERRED_TOOL = re.compile(r"CMAKE_(\w+_COMPILER_)?(AR|RANLIB|LINKER|NM|OBJCOPY|OBJDUMP|READELF|"
                            r"STRIP|ADDR2LINE|DLLTOOL|MT|TAPI)")


def read_cache(build_dir):
    """CMakeCache.txt as {name: value}, comments left out."""
    cache = {}
    with open(os.path.join(build_dir, "CMakeCache.txt"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"([^#/][^:=]*):[A-Z]+=(.*)", line.rstrip("\n"))
            if m:
                cache[m.group(1)] = m.group(2)
    return cache


def used_files(build_dir, cache):
    """Absolute paths of the files from outside the trees that configuring and building used:
    (needed, preferred), the second the binutils CMake chose among alternatives."""
    compiler = cache.get("CMAKE_CXX_COMPILER") or "c++"
    used, preferred = set(), set()
    for line in ninja_lines(build_dir):
        m = re.match(r"build build\.ninja: RERUN_CMAKE .*? \| (.*)", line)
        if m:  # the CMake scripts and files the configure step read
            used.update(split_ninja_paths(m.group(1)))
        m = re.match(r"\s+LINK_LIBRARIES = (.*)", line)
        if m:
            for item in m.group(1).split():
                if item.startswith("/"):
                    used.add(item)
                elif item.startswith("-l"):
                    lib = library_file(compiler, item[2:])
                    if lib:
                        used.add(lib)
    for key, value in cache.items():
        paths = [v for v in value.split(";") if v.startswith("/")]
        (preferred if PREFERRED_TOOL.fullmatch(key) else used).update(paths)
    deps = subprocess.run(["ninja", "-C", build_dir, "-t", "deps"], check=True,
                          capture_output=True, text=True).stdout
    used.update(line.strip() for line in deps.splitlines() if line.startswith("    /"))
    return ({p for p in used if os.path.isfile(p)},
            {p for p in preferred - used if os.path.isfile(p)})


@functools.lru_cache(maxsize=None)
def library_file(compiler, name):
    """The file the linker takes for -l<name> (shared first, as ld does)."""
    for suffix in (".so", ".a"):
        out = subprocess.run([compiler, f"-print-file-name=lib{name}{suffix}"],
                             capture_output=True, text=True).stdout.strip()
        if os.path.isabs(out) and os.path.exists(out):
            return out
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build_dirs", nargs="+")
    ap.add_argument("--drop", action="append", default=[])
    args = ap.parse_args()

    listed = subprocess.run(["bash", os.path.join(REPO, "scripts", "install-deps.sh"), "--list"],
                            check=True, capture_output=True, text=True).stdout.split()
    listed = [p for p in listed if p not in args.drop]
    pkgs = installed_packages()
    allowed = allowed_packages(listed, pkgs)
    owners = file_owners()

    problems = {}  # package (or a reason) -> files
    notes = {}  # the same for preferred tools a fresh machine replaces by its fallback
    counted = set()
    for build_dir in args.build_dirs:
        build_dir = os.path.abspath(build_dir)
        cache = read_cache(build_dir)
        cuda_roots = [os.path.realpath(r) for r in
                      (cache.get("CUDAToolkit_LIBRARY_ROOT", ""),
                       os.path.dirname(os.path.dirname(cache.get("CMAKE_CUDA_COMPILER", ""))))
                      if r]
        files, preferred = used_files(build_dir, cache)
        for path in sorted(files | preferred):
            found = notes if path in preferred else problems
            real = os.path.realpath(path)
            if real.startswith((REPO + os.sep, build_dir + os.sep)):
                continue
            counted.add(path)
            # The path as named (a -dev package's libfoo.so link) and what it resolves to (the
            # runtime package's libfoo.so.N): each owned one must come from an allowed package.
            named = [owners.get(c) for c in dict.fromkeys((canonical(path), real))]
            named = [o for o in named if o]
            if not named:
                if any(real.startswith(r + os.sep) for r in cuda_roots):
                    continue
                found.setdefault("(owned by no Debian package)", set()).add(path)
                continue
            for o in named:
                if not o & allowed:
                    found.setdefault(" or ".join(sorted(o)), set()).add(path)

    print(f"check-deps: {len(counted)} files from outside the repository used by "
          f"{', '.join(args.build_dirs)}; install-deps.sh lists {len(listed)} packages, "
          f"{len(allowed)} with their hard dependencies and the base system")
    for pkg, files in sorted(notes.items()):
        print(f"check-deps: note: CMake preferred {', '.join(sorted(files))} from {pkg}, "
              f"installed here only; a fresh machine uses its GNU binutils instead")
    if not problems:
        print("check-deps: every one comes with install-deps.sh on a fresh machine")
        return 0
    for pkg, files in sorted(problems.items()):
        shown = sorted(files)
        more = f" (and {len(shown) - 3} more)" if len(shown) > 3 else ""
        print(f"check-deps: MISSING {pkg}: not installed by install-deps.sh (nor a hard "
              f"dependency of a package it lists), but the build used {', '.join(shown[:3])}{more}",
              file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
