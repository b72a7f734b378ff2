#!/usr/bin/env bash
# Write an upgrade fixture: build the coffer binary of commit REV, run the
# upgrade workload against it (cmd/coffer/upgrade_test.go) and save its data
# directory, keys and answers as cmd/coffer/testdata/upgrade/NAME.tar.gz.
# Run it with the last commit before every change to the fsm command table
# and check the fixture in; TestBinary_UpgradeFromEarlierCommandTables then
# starts every later binary on it.
#
#   scripts/upgrade-fixture.sh REV [NAME]     (NAME defaults to the short hash)
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: scripts/upgrade-fixture.sh REV [NAME]}
name=${2:-$(git rev-parse --short "$rev")}
work=$(mktemp -d)
trap 'git worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/src" "$rev" >/dev/null
(cd "$work/src" && go build -o "$work/coffer" ./cmd/coffer)
mkdir -p cmd/coffer/testdata/upgrade
out=$PWD/cmd/coffer/testdata/upgrade/$name.tar.gz
COFFER_UPGRADE_FROM="$work/coffer" COFFER_UPGRADE_OUT="$out" \
  go test -count=1 -run '^TestBinary_UpgradeFromEarlierCommandTables$' ./cmd/coffer/
echo "wrote $out"
