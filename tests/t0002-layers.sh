#!/usr/bin/env bash
# The library's layering (src/lib/README.md): every folder of src/lib is in
# its table, and each file includes only its own folder and the folders the
# table allows, by folder-qualified name; a tool includes only the library
# and its own folder's headers.
. "$(dirname "$0")/lib.sh"
if [ -n "${EVO_SANITIZED:-}" ]; then exit 0; fi # about the source, not the build
lib=$EVO_ROOT/src/lib
verdict() { if [ -z "$2" ]; then pass "$1"; else fail "$1" "against the rule:$2"; fi; }
# "| folder | holds | may include |" rows, header and rule skipped.
sed -n 's/^| \([a-z]*\) | .* | \([a-z -]*\) |$/\1 \2/p' "$lib/README.md" | grep -v '^folder ' >allowed
check "the README's table has rows" test -s allowed
for d in "$lib"/*/; do
    d=$(basename "$d")
    check "src/lib/$d is in the README's table" grep -q "^$d " allowed
done
while read -r folder deps; do
    bad=
    for f in "$lib/$folder"/*.[ch]; do
        while read -r inc; do
            case $inc in
            */*) dep=${inc%%/*}
                 [ "$dep" = "$folder" ] || [[ " $deps " == *" $dep "* ]] || bad="$bad $(basename "$f"):$inc" ;;
            *) bad="$bad $(basename "$f"):$inc (no folder)" ;;
            esac
        done < <(sed -n 's/^#include "\(.*\)".*/\1/p' "$f")
    done
    verdict "src/lib/$folder includes only its own folder and: ${deps/-/nothing}" "$bad"
done <allowed
for tool in "$EVO_ROOT"/src/*/; do
    [ "$tool" = "$lib/" ] && continue
    bad=
    for f in "$tool"*.[ch]; do
        while read -r inc; do
            case $inc in
            ../* | */../*) bad="$bad $(basename "$f"):$inc" ;;
            */*) [ -f "$lib/$inc" ] || bad="$bad $(basename "$f"):$inc" ;;
            *) [ -f "$tool$inc" ] || bad="$bad $(basename "$f"):$inc" ;;
            esac
        done < <(sed -n 's/^#include "\(.*\)".*/\1/p' "$f")
    done
    verdict "src/$(basename "$tool") includes the library and its own headers only" "$bad"
done
