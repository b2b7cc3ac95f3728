#!/usr/bin/env bash
# Rewrite the diff block of vendor/<crate>/PITFALL-PATCHES.md from the
# sources: downloads the published crate from crates.io into a temporary
# folder and puts `diff -u` of every changed file of `src/` in place of the
# document's ```diff block. Run it after changing a vendored crate.
#
#   scripts/vendor-diff.sh turmoil 0.7.2
#   scripts/vendor-diff.sh tokio 1.54.1
set -euo pipefail

crate=${1:?usage: scripts/vendor-diff.sh CRATE VERSION}
version=${2:?usage: scripts/vendor-diff.sh CRATE VERSION}
root=$(cd "$(dirname "$0")/.." && pwd)
vendored="$root/vendor/$crate"
doc="$vendored/PITFALL-PATCHES.md"
[ -f "$doc" ] || { echo "no $doc" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -sfL "https://static.crates.io/crates/$crate/$crate-$version.crate" -o "$work/c.crate"
tar xzf "$work/c.crate" -C "$work"
published="$work/$crate-$version"

# One `diff -u` per changed file, with paths named as the document names them.
(
    cd "$vendored"
    find src -type f | LC_ALL=C sort | while read -r file; do
        if ! cmp -s "$published/$file" "$file"; then
            diff -u "$published/$file" "$file" \
                --label "$crate-$version/$file" --label "$crate-$version+pitfall/$file" || true
        fi
    done
) >"$work/patch.diff"

python3 - "$doc" "$work/patch.diff" <<'EOF'
import sys
doc, patch = sys.argv[1], open(sys.argv[2]).read()
text = open(doc).read()
start = text.index("```diff\n") + len("```diff\n")
end = text.index("```", start)
open(doc, "w").write(text[:start] + patch + text[end:])
EOF
echo "rewrote the diff in $doc"
