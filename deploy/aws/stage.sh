#!/usr/bin/env bash
# Assembles what the Lambda function runs in deploy/aws/.build, the template's CodeUri: dist/ as `npm run build`
# made it (without the dashboard: the function forwards its pages to the leader; nor the standalone agent
# package, which runs on devices), package.json, and the production dependencies. Install scripts are skipped:
# `prepare` would build again without the dev tools, and better-sqlite3's native build is not needed (the
# function never loads it: test/e2e/lambda-package.test.ts).
# Then: sam deploy --template-file deploy/aws/template.yaml ... (docs/operations.md, "AWS Lambda").
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/deploy/aws/.build"
if [[ ! -f $root/dist/lambda.js ]]; then
  echo "dist/lambda.js is missing: run npm run build first" >&2
  exit 1
fi
rm -rf "$out"
mkdir -p "$out"
cp -R "$root/dist" "$root/package.json" "$root/package-lock.json" "$out/"
rm -rf "$out/dist/web" "$out/dist/agent-package"
(cd "$out" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
echo "staged $(du -sh "$out" | cut -f1) in $out"
