#!/usr/bin/env bash
# Files damaged under a reader: a token file and a pack file with one bit
# flipped at sampled positions (anywhere: header, metadata, section table,
# data, padding), or truncated at sampled lengths. Every one must be
# refused (exit 1) by the reader (evo-tokenize --info, evo-pack --info,
# which verify every checksum) with one line naming the file and the
# damaged part: the header (its checksum, or the sizes read before it can
# be checked, which also catch truncations), the section whose checksum
# failed, or the padding between sections (which must be zero). 300 flips and 50 truncations a file (make
# check-slow: 3000 and 500), positions from a fixed seed.
. "$(dirname "$0")/lib.sh"
tiny_training
flips=300 cuts=50
if [ -n "${EVO_SLOW:-}" ]; then flips=3000 cuts=500; fi

# damage FILE FLIPS CUTS CMD...: prints "detected total first-miss".
damage() {
    /usr/bin/python3 - "$@" <<'PY'
import random, re, subprocess, sys
path, flips, cuts, cmd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
data = open(path, 'rb').read()
rnd = random.Random(20261207)
bad = path + '.bad'
# the part: the header (its checksum, or a field read before the checksum
# can be: its size, the file size), a section, the padding
good = re.compile(r'^evo-[a-z]+: ' + re.escape(bad) + r': offset \d+: (checksum mismatch in section \d+|.*header'
                  r'|nonzero byte outside every section)')
detected, miss = 0, ''
cases = [('flip', rnd.randrange(len(data) * 8)) for _ in range(flips)]
cases += [('cut', rnd.randrange(len(data))) for _ in range(cuts)]
for kind, at in cases:
    b = bytearray(data)
    if kind == 'flip':
        b[at // 8] ^= 1 << (at % 8)
    else:
        del b[at:]
    open(bad, 'wb').write(b)
    p = subprocess.run(cmd + [bad], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = p.stderr.splitlines()
    if p.returncode == 1 and len(lines) == 1 and good.match(lines[0]):
        detected += 1
    elif not miss:
        miss = '%s at %d: exit %d: %s' % (kind, at // 8 if kind == 'flip' else at, p.returncode, p.stderr.strip()[:200])
print(detected, len(cases), miss)
PY
}
for f in "c.tok:evo-tokenize --info" "train.pack:evo-pack --info"; do
    file=${f%%:*} cmd=${f#*:}
    read -r detected total miss < <(damage "$file" "$flips" "$cuts" $cmd)
    if [ "$detected" = "$total" ]; then
        pass "$file ($(stat -c %s "$file") bytes): $flips bit flips and $cuts truncations, all $total refused naming the header or section"
    else
        fail "$file: $detected of $total damaged copies refused naming the part" "$miss"
    fi
done
