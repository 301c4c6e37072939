#!/usr/bin/env bash
# make install puts tools and man pages under PREFIX; make demo runs the
# pipeline on the bundled data; the man pages render without warnings.
. "$(dirname "$0")/lib.sh"
if [ -n "${EVO_SANITIZED:-}" ]; then exit 0; fi # nothing here depends on the build flavour
check "make install PREFIX=..." make -s -C "$EVO_ROOT" install PREFIX="$T/prefix"
check "tools installed" test -x "$T/prefix/bin/evo-tokenize"
check "man pages installed" test -f "$T/prefix/share/man/man1/evo-tokenize.1" -a -f "$T/prefix/share/man/man5/evo-tokens.5"
for page in "$EVO_ROOT"/man/man*/*.[15]; do
    check "$(basename "$page") renders without warnings" sh -c "! MANWIDTH=80 man -l '$page' 2>&1 >/dev/null | grep ."
done
# The demo shortened to 10 steps of training: the whole pipeline, not the wait.
check "make demo: tokenize, pack, train, checkpoint" sh -c \
    "EVO_DEMO_DIR='$T/demo' EVO_DEMO_STEPS=10 EVO_BIN='$EVO_BIN' OMP_WAIT_POLICY=passive '$EVO_ROOT/scripts/demo.sh' >demo.log 2>&1 && grep -q '^documents: ' demo.log && test -s '$T/demo/corpus.tok' && grep -q 'step 10/10' demo.log && test -f '$T/demo/ckpt/10/10.step'"
