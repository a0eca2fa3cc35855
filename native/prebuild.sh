#!/usr/bin/env bash
# Builds the addon's prebuilds, what an installed package loads without a compiler: one per Node
# line the package supports, since the addon uses V8's API and V8's ABI changes with each line
# (prebuilds/linux-x64/xpmem-threads.abi<N>.node). Each is compiled against its line's own
# headers (the runtime packages of .ci/runtimes.sh carry include/node) by prebuildify, then
# loaded by that line's node from prebuilds/ alone (PREBUILDS_ONLY), or the script fails.
#
#   npm run prebuilds     (prepack runs it)
#
# The addon of the node on PATH is then its line's prebuild (prebuildify leaves no build/Release).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf prebuilds
for line in 20 22 24 26; do
  bin=$(bash .ci/runtimes.sh "node@$line")
  version=$("$bin/node" -p process.versions.node)
  PATH="$bin:$PATH" npm_config_nodedir="$bin/.." node_modules/.bin/prebuildify --napi=false --strip --target "node@$version"
  PREBUILDS_ONLY=1 "$bin/node" -e "require('node-gyp-build')('.'); console.log('node $version loads prebuilds/linux-x64/xpmem-threads.abi' + process.versions.modules + '.node')"
done
