#!/usr/bin/env bash
# Runs the process tests (the files listed in vitest.processes.config.ts) on another Node version:
#
#   scripts/test-node.sh 22            # or: npm run test:node -- 22
#   scripts/test-node.sh 24.1.0 test/e2e/server-process.test.ts   # extra arguments go to vitest
#
# It works in a scratch copy of this checkout (under $TMPDIR, removed at the end), so the checkout's
# node_modules keep better-sqlite3 built for the Node that runs `npm test`. Steps:
#   1. the official Node binary and headers from the npm package node-<os>-<cpu> (npm's cache keeps it);
#   2. a copy of the working tree and of its node_modules (run `npm ci` first);
#   3. better-sqlite3 compiled from source for that Node (npm_config_nodedir points node-gyp at its
#      headers); the result is kept in $ORCH_NODE_CACHE (default ~/.cache/aws-orchestrator) for the
#      next run with the same better-sqlite3 and Node versions;
#   4. dist/ built with that Node, and its CLI run on it (it writes and reads a database);
#   5. vitest run by that Node, with its bin first on PATH (agents run `#!/usr/bin/env node` handlers),
#      and ORCH_EXPECT_NODE set: test/e2e/node-runtime.test.ts checks that the tests, the orchestrator
#      and agent child processes and the handlers all run on it.
# Steps 1-4 are CPU and disk work without timing; step 5 is timing-sensitive. CI (.ci/run) prepares
# several versions side by side and then tests them one at a time:
#   scripts/test-node.sh --prepare DIR VERSION          # steps 1-4 into DIR (a new folder), kept
#   scripts/test-node.sh --in DIR VERSION [vitest args] # step 5 in DIR, which is removed at the end
# Network: the npm registry only. Any failure ends the script with a non-zero status.
set -euo pipefail

usage() {
  echo "usage: $0 [--prepare DIR | --in DIR] VERSION [vitest arguments...]   (VERSION: 22, 24, 22.12 or 22.12.0)" >&2
  exit 2
}
mode=all
case ${1:-} in
  --prepare | --in)
    [[ $# -ge 3 ]] || usage
    mode=${1#--}
    work=$2
    shift 2
    ;;
esac
[[ $# -ge 1 && $1 =~ ^[0-9]+(\.[0-9]+){0,2}$ ]] || usage
asked=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '[node %s] %s\n' "$asked" "$*"; }
fail() { say "FAILED: $*" >&2; exit 1; }
started=$SECONDS
step() { say "$* ($((SECONDS - started)) s)"; }

case $mode in
  all)
    work=$(mktemp -d "${TMPDIR:-/tmp}/orch-node$asked.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    # mktemp makes it 700: the start-up tests run some processes as nobody, who must reach this Node and the app.
    chmod 755 "$work"
    ;;
  prepare)
    [[ ! -e $work ]] || fail "$work exists: --prepare makes a new folder"
    mkdir -p "$work"
    work=$(cd "$work" && pwd)
    ;;
  in)
    [[ -x $work/node/bin/node && -f $work/prepared ]] || fail "$work was not prepared: run $0 --prepare $work $asked first"
    work=$(cd "$work" && pwd)
    trap 'rm -rf "$work"' EXIT
    ;;
esac
node=$work/node/bin/node
app=$work/app

prepare() {
  [[ -f $root/node_modules/better-sqlite3/package.json ]] || fail "no node_modules in $root: run npm ci first"
  local os cpu
  case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) fail "no Node package for $(uname -s)" ;; esac
  case "$(uname -m)" in x86_64 | amd64) cpu=x64 ;; aarch64 | arm64) cpu=arm64 ;; *) fail "no Node package for $(uname -m)" ;; esac

  # 1. Node itself.
  step "fetching node-$os-$cpu@$asked from the npm registry"
  local tarball
  tarball=$(cd "$work" && npm pack "node-$os-$cpu@$asked" --loglevel=error) || fail "could not fetch node-$os-$cpu@$asked from the npm registry"
  mkdir "$work/node"
  tar -xzf "$work/$tarball" -C "$work/node" --strip-components=1
  rm "$work/$tarball"
  [[ -f $work/node/include/node/node_version.h ]] || fail "node-$os-$cpu@$asked has no headers (include/node)"
  local version abi
  version=$("$node" -p process.versions.node)
  abi=$("$node" -p process.versions.modules)
  [[ $version == "$asked" || $version == "$asked".* ]] || fail "asked for Node $asked, the package holds $version"
  step "Node $version (ABI $abi)"

  # 2. The project: the working tree (uncommitted changes included) and its node_modules.
  mkdir "$app"
  tar -C "$root" --exclude=./node_modules --exclude=./.git --exclude=./dist --exclude=./data --exclude=./coverage --exclude=./.tmp -cf - . | tar -C "$app" -xf -
  cp -a "$root/node_modules" "$app/node_modules"

  # 3. better-sqlite3 for this Node.
  local sqlite_dir sqlite_version cache loaded
  sqlite_dir=$app/node_modules/better-sqlite3
  sqlite_version=$("$node" -p "require('$sqlite_dir/package.json').version")
  cache=${ORCH_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aws-orchestrator}/better-sqlite3-$sqlite_version-node-$version-$os-$cpu.node
  rm -rf "$sqlite_dir/build"
  if [[ -f $cache ]]; then
    step "better-sqlite3 $sqlite_version for Node $version from $cache"
    mkdir -p "$sqlite_dir/build/Release"
    cp "$cache" "$sqlite_dir/build/Release/better_sqlite3.node"
  else
    step "compiling better-sqlite3 $sqlite_version for Node $version (a minute or two)"
    (cd "$app" && npm_config_nodedir="$work/node" npm rebuild better-sqlite3 --build-from-source --foreground-scripts --no-audit --no-fund >"$work/rebuild.log" 2>&1) || {
      tail -n 40 "$work/rebuild.log" >&2
      fail "could not compile better-sqlite3 for Node $version"
    }
    mkdir -p "$(dirname "$cache")"
    cp "$sqlite_dir/build/Release/better_sqlite3.node" "$cache.$$"
    mv "$cache.$$" "$cache"
  fi
  loaded=$(cd "$app" && "$node" -e "
    const db = new (require('better-sqlite3'))(':memory:');
    console.log(process.versions.node, process.versions.modules, db.prepare('select sqlite_version() as v').get().v);
  ") || fail "better-sqlite3 does not load on Node $version (a cached build is in $cache: remove it to compile again)"
  local loaded_node loaded_abi sqlite
  read -r loaded_node loaded_abi sqlite <<<"$loaded"
  [[ $loaded_node == "$version" && $loaded_abi == "$abi" ]] || fail "better-sqlite3 loaded on Node $loaded_node (ABI $loaded_abi), not $version"
  step "better-sqlite3 loads on Node $loaded_node (ABI $loaded_abi, SQLite $sqlite)"

  # 4. dist/ as `npm install` builds it (the prepare script), and its CLI writing and reading a database.
  step "building dist/ with Node $version"
  (cd "$app" && "$node" node_modules/typescript/bin/tsc -p tsconfig.build.json)
  # The local commands never make a database by mistake: on a folder without one they refuse (exit 2);
  # `token create --init` makes it on purpose.
  local listed refused=0
  rm -rf "$work/data"
  (cd "$app" && "$node" dist/cli/main.js token create --role viewer --name "node-$version" --data-dir "$work/data" >/dev/null 2>&1) || refused=$?
  [[ $refused == 2 && ! -e $work/data/orchestrator.db ]] || fail "dist/cli/main.js on Node $version: token create without a database exited $refused (not 2), or made one"
  listed=$(cd "$app" && "$node" dist/cli/main.js token create --init --role viewer --name "node-$version" --data-dir "$work/data" 2>/dev/null >/dev/null &&
    "$node" dist/cli/main.js token list --json --data-dir "$work/data") || fail "dist/cli/main.js does not run on Node $version"
  [[ $listed == *'"name":"node-'"$version"'","role":"viewer"'* ]] || fail "dist/cli/main.js on Node $version: token list shows \"$listed\""
  step "dist/cli/main.js refused a missing database, then created one with a token and listed it on Node $version"
  touch "$work/prepared"
}

run_tests() {
  # 5. The process tests, with this Node first on PATH for every `node` they start.
  export PATH="$work/node/bin:$PATH"
  [[ $(command -v node) == "$node" ]] || fail "node on PATH is $(command -v node), not $node"
  local version
  version=$("$node" -p process.versions.node)
  step "vitest on Node $version: the files of vitest.processes.config.ts"
  (cd "$app" && ORCH_EXPECT_NODE=$asked "$node" node_modules/vitest/vitest.mjs run --config vitest.processes.config.ts "$@") || fail "process tests on Node $version"
  step "process tests passed on Node $version"
}

case $mode in
  all)
    prepare
    run_tests "$@"
    ;;
  prepare) prepare ;;
  in) run_tests "$@" ;;
esac
