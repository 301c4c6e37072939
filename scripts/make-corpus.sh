#!/usr/bin/env bash
# make-corpus.sh - build evo's bundled default corpus in data/corpus/ from
# freely licensed text shipped in Debian 12 (bookworm) packages.
#
# Outputs (all UTF-8, one document per line / per JSON object):
#   data/corpus/en.txt      English prose   (target 3,000,000 bytes)
#   data/corpus/zh.txt      Chinese (zh-CN) (target 1,500,000 bytes)
#   data/corpus/code.jsonl  C / Python / shell source files, {"text","path"}
#                                           (target   800,000 bytes)
#   data/corpus/SOURCES.md  packages, versions, licences, extraction method
#
# Deterministic for a given set of installed package versions: file lists are
# sorted, documents are chosen by an md5 ordering of fixed ids, and every
# output is truncated at a document boundary to a fixed byte target.
#
# Usage: scripts/make-corpus.sh [OUTDIR]     (default: data/corpus)
# As root it apt-get installs what is missing; otherwise it prints the list.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/data/corpus}
PY=/usr/bin/python3

PKGS=(sword-text-web libsword-utils dict-jargon dict-foldoc dict-devil
      python3.11-doc libpython3.11-stdlib fortunes-zh debian-reference-zh-cn
      manpages-zh groff-base glibc-source bash-completion xz-utils)

missing=()
for p in "${PKGS[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "make-corpus: installing ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
    else
        echo "make-corpus: missing Debian packages; run as root:" >&2
        echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi
for t in mod2imp groff timeout tar "$PY"; do
    command -v "$t" >/dev/null || { echo "make-corpus: $t not found" >&2; exit 1; }
done

export LC_ALL=C.UTF-8 TZ=UTC
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# World English Bible, SWORD module -> IMP text (one "$$$Book c:v" key per verse)
mod2imp engWEB2015eb > "$TMP/web.imp" 2>/dev/null

# glibc sources: only a few directories of the upstream tarball are needed
tars=(/usr/src/glibc/glibc-*.tar.xz)          # glob expansion is sorted
GLIBC_TAR=${tars[-1]}
GLIBC_DIR=$(basename "$GLIBC_TAR" .tar.xz)
mkdir -p "$TMP/glibc"
tar -xJf "$GLIBC_TAR" -C "$TMP/glibc" --wildcards \
    "$GLIBC_DIR/string/*.c" "$GLIBC_DIR/stdlib/*.c" "$GLIBC_DIR/stdio-common/*.c" \
    "$GLIBC_DIR/libio/*.c" "$GLIBC_DIR/time/*.c" "$GLIBC_DIR/scripts/*.sh"

# package versions for SOURCES.md
for p in "${PKGS[@]}"; do
    printf '%s\t%s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p")"
done > "$TMP/versions.tsv"

mkdir -p "$OUT"
"$PY" - "$TMP" "$OUT" "$GLIBC_DIR" <<'PYEOF'
import base64, gzip, hashlib, json, os, re, subprocess, sys, unicodedata
from concurrent.futures import ThreadPoolExecutor

TMP, OUT, GLIBC_DIR = sys.argv[1], sys.argv[2], sys.argv[3]
VERS = dict(l.rstrip('\n').split('\t') for l in open(f'{TMP}/versions.tsv'))

TARGET = {'en': 3_000_000, 'zh': 1_500_000, 'code': 800_000}
# per-source byte budgets (selection overshoots by at most one document; the
# final file is cut at TARGET on a document boundary)
BUDGET = {
    'web': 1_150_000, 'pydoc': 850_000, 'jargon': 420_000,
    'foldoc': 420_000, 'devil': 250_000,
    'ref-zh': 560_000, 'fortune-zh': 360_000, 'man-zh': 840_000,
    'glibc': 380_000, 'pystdlib': 290_000, 'shell': 180_000,
}
stats = {}

def md5key(s):
    return hashlib.md5(s.encode()).hexdigest()

def nbytes(s):
    return len(s.encode('utf-8')) + 1

# Prose: every whitespace / control / line-separator character becomes one space
_ws = re.compile(r'\s+')
def clean_prose(s):
    s = re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', s)          # ANSI colour codes
    s = ''.join(' ' if unicodedata.category(c) in ('Cc', 'Zl', 'Zp', 'Cs') or c == '\ufeff' else c
                for c in s)
    return _ws.sub(' ', s).strip()

def is_cjk(c):
    o = ord(c)
    return (0x2E80 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF
            or 0x3000 <= o <= 0x303F or 0x20000 <= o <= 0x3FFFF)

def join_lines_cjk(lines):
    """Join wrapped lines; no space inserted between two CJK characters."""
    out = ''
    for l in lines:
        l = l.strip()
        if not l:
            continue
        if out and not (is_cjk(out[-1]) or is_cjk(l[0])):
            out += ' '
        out += l
    return out

_sent_end = re.compile(r'(?<=[.!?;。！？；])\s*')
def split_long(docs, limit=16_000):
    """Split documents longer than `limit` UTF-8 bytes at sentence ends into
    parts of at most `limit` bytes (hard cut at a space/char if needed)."""
    out = []
    for did, t in docs:
        if nbytes(t) <= limit:
            out.append((did, t)); continue
        parts, cur = [], ''
        for sent in _sent_end.split(t):
            while nbytes(sent) > limit:       # no sentence end: cut at a space
                cut = sent.encode()[:limit // 2].decode('utf-8', 'ignore')
                sp = cut.rfind(' ')
                cut = cut[:sp] if sp > len(cut) // 2 else cut
                if cur:
                    parts.append(cur); cur = ''
                parts.append(cut.strip()); sent = sent[len(cut):].strip()
            if cur and nbytes(cur + ' ' + sent) > limit:
                parts.append(cur); cur = sent
            else:
                cur = (cur + ' ' + sent) if cur and sent else (cur or sent)
        if cur:
            parts.append(cur)
        out.extend((f'{did}#{k}', x.strip()) for k, x in enumerate(parts) if x.strip())
    return out

def select(name, docs, budget):
    """docs: list of (id, text). Choose documents in md5(id) order until the
    budget is reached, return them in original order."""
    if name not in ('glibc', 'pystdlib', 'shell'):
        docs = split_long(docs)
    total = sum(nbytes(t) for _, t in docs)
    if total > budget:
        order = sorted(range(len(docs)), key=lambda i: md5key(f'{name}:{docs[i][0]}'))
        keep, acc = set(), 0
        for i in order:
            if acc >= budget:
                break
            keep.add(i); acc += nbytes(docs[i][1])
        docs = [d for i, d in enumerate(docs) if i in keep]
    stats[name] = {'available_bytes': total, 'docs': len(docs)}
    return [t for _, t in docs]

def interleave(sources):
    """sources: list of (name, [docs]). Merge so that every source is spread
    evenly over the output (key = relative byte position inside its source)."""
    keyed = []
    for si, (name, docs) in enumerate(sources):
        tot = sum(nbytes(d) for d in docs) or 1
        acc = 0
        for di, d in enumerate(docs):
            n = nbytes(d)
            keyed.append(((acc + n / 2) / tot, si, di, name, d))
            acc += n
    keyed.sort(key=lambda k: k[:3])
    return [(k[3], k[4]) for k in keyed]

def write_lines(path, items, target, kind):
    size, n, per = 0, 0, {}
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        for name, line in items:
            b = nbytes(line)
            if size + b > target:
                break
            f.write(line + '\n'); size += b; n += 1
            per.setdefault(name, [0, 0]); per[name][0] += 1; per[name][1] += b
    for name, (c, b) in per.items():
        stats[name]['written_docs'] = c; stats[name]['written_bytes'] = b
    return size, n

# ---------------------------------------------------------------- English ---
def web_docs():
    """World English Bible: one document per chapter (verses joined)."""
    chapters, cur_key, cur = [], None, []
    key_re = re.compile(r'^\$\$\$(.+?) (\d+):(\d+)$')
    with open(f'{TMP}/web.imp', encoding='utf-8') as f:
        lines = f.read().split('\n')
    i = 0
    while i < len(lines):
        m = key_re.match(lines[i])
        if m:
            book, ch = m.group(1), int(m.group(2))
            body = []
            i += 1
            while i < len(lines) and not lines[i].startswith('$$$'):
                body.append(lines[i]); i += 1
            k = (book, ch)
            if k != cur_key:
                if cur:
                    chapters.append((f'{cur_key[0]} {cur_key[1]}', ' '.join(cur)))
                cur_key, cur = k, []
            cur.append(' '.join(body))
        else:
            i += 1
    if cur:
        chapters.append((f'{cur_key[0]} {cur_key[1]}', ' '.join(cur)))
    out = []
    for cid, raw in chapters:
        t = re.sub(r'<note\b.*?</note>', ' ', raw, flags=re.S)
        t = re.sub(r'<title\b.*?</title>', ' ', t, flags=re.S)
        t = re.sub(r'<[^>]*>', ' ', t)
        t = t.replace('&lt;', '<').replace('&gt;', '>').replace('&quot;', '"').replace('&amp;', '&')
        t = clean_prose(t)
        t = re.sub(r' ([,.;:!?’”)\]])', r'\1', t)
        t = re.sub(r'([‘“(\[]) ', r'\1', t)
        if len(t) >= 200:
            out.append((cid, t))
    return out

B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
def b64num(s):
    v = 0
    for c in s:
        v = v * 64 + B64.index(c)
    return v

def dict_docs(name):
    """dictd database: one document per entry (deduplicated by offset)."""
    data = gzip.open(f'/usr/share/dictd/{name}.dict.dz').read()
    seen, out = set(), []
    for line in open(f'/usr/share/dictd/{name}.index', encoding='utf-8'):
        parts = line.rstrip('\n').split('\t')
        if len(parts) < 3 or parts[0].startswith('00-database') or parts[0].startswith('00database'):
            continue
        off, ln = b64num(parts[1]), b64num(parts[2])
        if off in seen:
            continue
        seen.add(off)
        t = data[off:off + ln].decode('utf-8')
        t = t.replace('{', '').replace('}', '')
        t = clean_prose(t)
        if len(t) >= 80:
            out.append((off, t))
    out.sort()
    return [(f'{name}:{o}', t) for o, t in out]

PYDOC = '/usr/share/doc/python3.11/html/_sources'
ADORN = re.compile(r'^([=\-~^*#"+`\'.:_])\1{2,}\s*$')
TABLE = re.compile(r'^\s*([+|]|[=+\-]{2,}[=+\- ]*$)')
DROP_DIRECTIVES = {'code-block', 'sourcecode', 'code', 'doctest', 'testcode', 'testoutput',
                   'testsetup', 'testcleanup', 'index', 'toctree', 'productionlist',
                   'highlight', 'literalinclude', 'raw', 'csv-table', 'list-table',
                   'table', 'image', 'figure', 'only', 'include', 'moduleauthor',
                   'sectionauthor', 'module', 'currentmodule', 'opcode', 'c:macro',
                   'availability', 'audit-event', 'impl-detail', 'cmdoption', 'envvar'}

def rst_inline(s):
    s = re.sub(r':[a-zA-Z:+-]+:`!?~?([^`<]*?)\s*(<[^>]*>)?`', r'\1', s)
    s = re.sub(r'``([^`]+)``', r'\1', s)
    s = re.sub(r'`([^`<]+?)\s*(<[^>]*>)?`_{0,2}', r'\1', s)
    s = s.replace('**', '')
    s = s.replace('\\ ', '')
    return s

def rst_docs(path, rel):
    lines = open(path, encoding='utf-8').read().split('\n')
    sections, cur, para = [], [], []
    skip_indent = None        # drop lines indented deeper than this
    literal_next = False

    def flush_para():
        nonlocal literal_next
        if para:
            text = ' '.join(x.strip() for x in para)
            t = text.rstrip()
            literal_next = t.endswith('::')
            if literal_next:
                text = t[:-3] if t.endswith(' ::') else t[:-1]
            cur.append(text)
            para.clear()

    for line in lines:
        ind = len(line) - len(line.lstrip(' '))
        st = line.strip()
        if skip_indent is not None:
            if not st or ind > skip_indent:
                continue
            skip_indent = None
        if not st:
            flush_para(); continue
        if literal_next and not para:
            literal_next = False
            if ind > 0:
                skip_indent = ind - 1; continue
        if ADORN.match(st):
            if para:
                head = para.pop()
                flush_para()
                if cur:
                    sections.append(cur)
                cur = [head.strip()] if head.strip() else []
            continue
        if st.startswith('.. '):
            flush_para()
            m = re.match(r'\.\. ([a-zA-Z:-]+)::', st)
            if not m or m.group(1) in DROP_DIRECTIVES:
                skip_indent = ind
            continue
        if st.startswith(':') and re.match(r'^:[a-zA-Z -]+:', st) and not para:
            continue          # field lists / directive options
        if st.startswith('>>>') or st.startswith('...') or TABLE.match(line):
            flush_para(); skip_indent = None; continue
        para.append(line)
    flush_para()
    if cur:
        sections.append(cur)
    out = []
    for n, sec in enumerate(sections):
        t = clean_prose(rst_inline(' '.join(sec)))
        if len(t) >= 300 and len(re.findall(r'[a-zA-Z]', t)) > 0.6 * len(t):
            out.append((f'{rel}#{n}', t))
    return out

def pydoc_docs():
    files = []
    for d, _, fs in os.walk(PYDOC):
        for f in fs:
            if f.endswith('.rst.txt'):
                files.append(os.path.join(d, f))
    out = []
    for p in sorted(files):
        rel = os.path.relpath(p, PYDOC)
        if rel.startswith(('whatsnew/', 'includes/', 'c-api/')) or rel in ('license.rst.txt', 'contents.rst.txt'):
            continue
        out.extend(rst_docs(p, rel))
    return out

en_sources = [
    ('web', select('web', web_docs(), BUDGET['web'])),
    ('pydoc', select('pydoc', pydoc_docs(), BUDGET['pydoc'])),
    ('jargon', select('jargon', dict_docs('jargon'), BUDGET['jargon'])),
    ('foldoc', select('foldoc', dict_docs('foldoc'), BUDGET['foldoc'])),
    ('devil', select('devil', dict_docs('devil'), BUDGET['devil'])),
]
en_size, en_n = write_lines(f'{OUT}/en.txt', interleave(en_sources), TARGET['en'], 'en')

# ---------------------------------------------------------------- Chinese ---
BOX = re.compile(r'[\u2500-\u257f]')

def zh_ok(t, min_len=20):
    han = sum(1 for c in t if 0x4E00 <= ord(c) <= 0x9FFF)
    return len(t) >= min_len and han >= 0.25 * len(t)

def ref_zh_docs():
    """Debian Reference zh-CN plain-text edition: one document per section."""
    txt = gzip.open('/usr/share/debian-reference/debian-reference.zh-cn.txt.gz').read().decode('utf-8')
    lines = txt.split('\n')
    head_re = re.compile(r'^(\d+(\.\d+)*\.|[A-Z]\.(\d+\.)*)[ \u00a0]\S')
    table_re = re.compile(r'^\s*(\||\+-)')
    secs, cur, para = [], [], []
    def flush():
        if para:
            if not any(BOX.search(x) or table_re.match(x) for x in para):
                cur.append(join_lines_cjk(para))
            para.clear()
    for l in lines:
        if head_re.match(l):
            flush()
            if cur:
                secs.append(cur)
            cur = [l.strip()]
            continue
        if not l.strip():
            flush(); continue
        para.append(l)
    flush()
    if cur:
        secs.append(cur)
    out = []
    for n, s in enumerate(secs):
        t = clean_prose(' '.join(s))
        if zh_ok(t, 100):
            out.append((f'ref:{n}', t))
    return out

def fortune_zh_docs():
    """fortunes-zh 'chinese' collection: one document per fortune."""
    txt = open('/usr/share/games/fortunes/chinese', encoding='utf-8').read()
    out = []
    for n, ent in enumerate(txt.split('\n%\n')):
        ent = re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', ent)
        if BOX.search(ent):
            continue
        paras = re.split(r'\n\s*\n', ent)
        t = clean_prose(' '.join(join_lines_cjk(p.split('\n')) for p in paras))
        if zh_ok(t, 20):
            out.append((f'fortune:{n}', t))
    return out

MANZH = '/usr/share/man/zh_CN'
def render_man(path):
    raw = gzip.open(path).read()
    if raw.lstrip().startswith(b'.so '):
        return None
    try:
        r = subprocess.run(['timeout', '5', 'groff', '-k', '-man', '-Tutf8', '-rLL=4000n',
                            '-rcR=1', '-P-c', '-P-b', '-P-u'],
                           input=raw, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return None
    if r.returncode != 0:
        return None
    return r.stdout.decode('utf-8', 'replace')

def man_sections(path, text):
    lines = [l for l in text.split('\n') if not re.search(r' {20,}', l)]
    secs, cur = [], []
    for l in lines:
        if l and not l[0].isspace():
            if cur:
                secs.append(cur)
            cur = [l.strip()]
        elif l.strip():
            cur.append(l.strip())
    if cur:
        secs.append(cur)
    docs, acc = [], ''
    for s in secs:
        t = clean_prose(s[0] + ' ' + join_lines_cjk(s[1:]))
        t = re.sub(r' ?_{8,} ?', ' ', t).strip()
        acc = (acc + ' ' + t).strip() if acc else t
        if len(acc) >= 200:
            docs.append(acc); acc = ''
    if acc:
        docs.append(acc)
    return [d for d in docs if zh_ok(d, 60) and '\ufffd' not in d]

def man_zh_docs(budget):
    pages = []
    for d in sorted(os.listdir(MANZH)):
        for f in sorted(os.listdir(os.path.join(MANZH, d))):
            p = os.path.join(MANZH, d, f)
            if f.endswith('.gz') and os.path.isfile(p) and not os.path.islink(p):
                pages.append(p)
    # render pages in md5 order, in batches, until enough text is collected
    order = sorted(pages, key=lambda p: md5key('man:' + os.path.relpath(p, MANZH)))
    got, acc, failed = {}, 0, 0
    with ThreadPoolExecutor(max_workers=2) as ex:
        for b in range(0, len(order), 16):
            batch = order[b:b + 16]
            for p, txt in zip(batch, ex.map(render_man, batch)):
                if txt is None:
                    failed += 1; continue
                ds = man_sections(p, txt)
                if ds:
                    got[p] = ds; acc += sum(nbytes(x) for x in ds)
            if acc >= budget * 1.05:
                break
    stats['man-zh-pages'] = {'rendered_pages_used': len(got), 'skipped_or_failed': failed,
                             'pages_total': len(pages)}
    out = []
    for p in sorted(got):
        rel = os.path.relpath(p, MANZH)
        out.extend((f'{rel}:{i}', d) for i, d in enumerate(got[p]))
    return out

zh_sources = [
    ('ref-zh', select('ref-zh', ref_zh_docs(), BUDGET['ref-zh'])),
    ('fortune-zh', select('fortune-zh', fortune_zh_docs(), BUDGET['fortune-zh'])),
    ('man-zh', select('man-zh', man_zh_docs(BUDGET['man-zh']), BUDGET['man-zh'])),
]
zh_size, zh_n = write_lines(f'{OUT}/zh.txt', interleave(zh_sources), TARGET['zh'], 'zh')

# ------------------------------------------------------------------- Code ---
MAXFILE = 24_000
def code_item(path, label):
    try:
        b = open(path, 'rb').read()
        t = b.decode('utf-8')
    except (UnicodeDecodeError, OSError):
        return None
    if not t.strip() or len(b) > MAXFILE or len(b) < 200:
        return None
    if '\x00' in t or '\u2028' in t or '\u2029' in t:
        return None
    return (label, json.dumps({'text': t, 'path': label}, ensure_ascii=False))

def glibc_docs():
    base = f'{TMP}/glibc'
    out = []
    for d, _, fs in os.walk(base):
        for f in fs:
            if not f.endswith('.c') or f.startswith(('tst-', 'bug-', 'test-', 'tst_')):
                continue
            p = os.path.join(d, f)
            it = code_item(p, os.path.relpath(p, base))
            if it: out.append(it)
    return sorted(out)

def pystdlib_docs():
    base = '/usr/lib/python3.11'
    out = []
    for d, dirs, fs in os.walk(base):
        rel = os.path.relpath(d, base)
        top = rel.split('/')[0]
        if top in ('test', 'site-packages', 'dist-packages', 'idlelib', 'lib2to3', 'tkinter',
                   'turtledemo', 'ensurepip', 'venv', 'pydoc_data') or top.startswith('config-') \
           or 'tests' in rel.split('/') or '__pycache__' in rel:
            continue
        for f in fs:
            if f.endswith('.py'):
                p = os.path.join(d, f)
                it = code_item(p, p)
                if it: out.append(it)
    return sorted(out)

def shell_docs():
    out = []
    r = subprocess.run(['dpkg-query', '-L', 'bash-completion'], stdout=subprocess.PIPE, text=True, check=True)
    for p in sorted(r.stdout.split('\n')):
        if p.startswith('/usr/share/bash-completion/') and os.path.isfile(p) and not os.path.islink(p):
            it = code_item(p, p)
            if it: out.append(it)
    base = f'{TMP}/glibc'
    for d, _, fs in os.walk(base):
        for f in fs:
            if f.endswith('.sh'):
                p = os.path.join(d, f)
                it = code_item(p, os.path.relpath(p, base))
                if it: out.append(it)
    return sorted(out)

code_sources = [
    ('glibc', select('glibc', glibc_docs(), BUDGET['glibc'])),
    ('pystdlib', select('pystdlib', pystdlib_docs(), BUDGET['pystdlib'])),
    ('shell', select('shell', shell_docs(), BUDGET['shell'])),
]
code_size, code_n = write_lines(f'{OUT}/code.jsonl', interleave(code_sources), TARGET['code'], 'code')

# ----------------------------------------------------------- SOURCES.md ----
def sha256(p):
    return hashlib.sha256(open(p, 'rb').read()).hexdigest()

def st(name):
    s = stats.get(name, {})
    return f"{s.get('written_docs', 0)} docs, {s.get('written_bytes', 0):,} bytes"

V = VERS
md = f"""# evo bundled corpus — sources

Generated by `scripts/make-corpus.sh` from Debian 12 (bookworm) packages.
All text is freely licensed (public domain, GPL, GFDL, LGPL or PSF); the
licence of every package is its `/usr/share/doc/<package>/copyright`.
Re-running the script with the same package versions gives byte-identical
files (sorted inputs, md5-ordered document selection, fixed byte targets).

| file | bytes | documents | format |
|---|---:|---:|---|
| `en.txt` | {en_size:,} | {en_n:,} | one document per line, whitespace collapsed to single spaces |
| `zh.txt` | {zh_size:,} | {zh_n:,} | one document per line, whitespace collapsed to single spaces |
| `code.jsonl` | {code_size:,} | {code_n:,} | one JSON object per line: `{{"text": <file contents>, "path": ...}}` |

Targets: en 3,000,000 B, zh 1,500,000 B, code 800,000 B; each file is cut at
the last whole document that fits. Within a file, documents from the
different sources are interleaved evenly (ordered by relative position inside
their source), so any prefix of a file has roughly the same mix.

Prose cleaning (en, zh): ANSI colour escapes removed; every control,
line/paragraph-separator and whitespace character (including newlines) mapped
to a space; runs of spaces collapsed. Chinese wrapped lines are re-joined
without inserting a space between two CJK characters. Prose documents longer
than 16,000 bytes are split at sentence ends into parts of at most 16,000
bytes. Code files are kept verbatim (tabs, newlines) and must be valid UTF-8,
200 B – 24 kB.

## English (`en.txt`)

| source package | version | licence | extraction | used |
|---|---|---|---|---|
| `sword-text-web` (World English Bible, module engWEB2015eb) + `libsword-utils` (`mod2imp`) | {V['sword-text-web']} / {V['libsword-utils']} | public domain (text); GPL-2+ (packaging, tools) | `mod2imp engWEB2015eb`; OSIS tags stripped, footnotes (`<note>`) and headings (`<title>`) dropped; one document per chapter | {st('web')} |
| `python3.11-doc` (Python 3.11 documentation reST sources, `/usr/share/doc/python3.11/html/_sources`) | {V['python3.11-doc']} | PSF License v2 | all `*.rst.txt` except whatsnew/, c-api/, includes/; directives, literal/code blocks, doctests and tables dropped; inline roles reduced to their text; one document per section (≥ 300 chars) | {st('pydoc')} |
| `dict-jargon` (The Jargon File 4.4.7, dictd database) | {V['dict-jargon']} | public domain | entries located through `jargon.index` (dictd base64 offsets) in the gunzipped `.dict.dz`; `{{}}` cross-reference braces removed; one document per entry | {st('jargon')} |
| `dict-foldoc` (Free On-line Dictionary of Computing) | {V['dict-foldoc']} | GFDL-1.1+ | as dict-jargon | {st('foldoc')} |
| `dict-devil` (Ambrose Bierce, The Devil's Dictionary, 1911) | {V['dict-devil']} | public domain | as dict-jargon | {st('devil')} |

## Chinese, Simplified (`zh.txt`)

| source package | version | licence | extraction | used |
|---|---|---|---|---|
| `debian-reference-zh-cn` (Debian Reference, zh-CN translation) | {V['debian-reference-zh-cn']} | GPL-2+ | `debian-reference.zh-cn.txt.gz` (plain-text edition); paragraphs containing box-drawing tables dropped; one document per numbered section | {st('ref-zh')} |
| `fortunes-zh` (file `/usr/share/games/fortunes/chinese`) | {V['fortunes-zh']} | GPL-3+ | split on `%` lines, ANSI colours stripped, entries with box-drawing tables dropped, keep entries ≥ 25 % Han characters; one document per fortune | {st('fortune-zh')} |
| `manpages-zh` (`/usr/share/man/zh_CN`) rendered with `groff-base` | {V['manpages-zh']} / {V['groff-base']} | GFDL-1.2+ / GPL-2+ (per page, see copyright) | `timeout 5 groff -k -man -Tutf8 -rLL=4000n -rcR=1 -P-c -P-b -P-u` per page (pages in md5 order until the budget is met; `.so` aliases and pages that fail or time out skipped); header/footer lines removed; man sections merged into documents of ≥ 200 chars | {st('man-zh')} |

## Code (`code.jsonl`)

| source package | version | licence | extraction | used |
|---|---|---|---|---|
| `glibc-source` (`{GLIBC_DIR}.tar.xz`: string/, stdlib/, stdio-common/, libio/, time/ `*.c`, tests excluded) | {V['glibc-source']} | LGPL-2.1+ | files verbatim; `path` is the path inside the tarball | {st('glibc')} |
| `libpython3.11-stdlib` (`/usr/lib/python3.11/**/*.py`, excluding test, idlelib, lib2to3, tkinter, turtledemo, ensurepip, venv, pydoc_data) | {V['libpython3.11-stdlib']} | PSF License v2 | files verbatim | {st('pystdlib')} |
| `bash-completion` (`/usr/share/bash-completion/**`) + `glibc-source` (`scripts/*.sh`) | {V['bash-completion']} / {V['glibc-source']} | GPL-2+ / GPL-2+, LGPL-2.1+ | files verbatim | {st('shell')} |

Documents are chosen per source in md5(source:id) order until a byte budget
is reached, then written in their original order (web {BUDGET['web']:,},
pydoc {BUDGET['pydoc']:,}, jargon {BUDGET['jargon']:,}, foldoc {BUDGET['foldoc']:,},
devil {BUDGET['devil']:,}; ref-zh {BUDGET['ref-zh']:,}, fortune-zh {BUDGET['fortune-zh']:,},
man-zh {BUDGET['man-zh']:,}; glibc {BUDGET['glibc']:,}, pystdlib {BUDGET['pystdlib']:,},
shell {BUDGET['shell']:,} bytes).

## Checksums (sha256)

```
{sha256(f'{OUT}/en.txt')}  en.txt
{sha256(f'{OUT}/zh.txt')}  zh.txt
{sha256(f'{OUT}/code.jsonl')}  code.jsonl
```
"""
open(f'{OUT}/SOURCES.md', 'w', encoding='utf-8').write(md)
print(f'en.txt {en_size} B {en_n} docs; zh.txt {zh_size} B {zh_n} docs; '
      f'code.jsonl {code_size} B {code_n} docs', file=sys.stderr)
print(json.dumps(stats, indent=1), file=sys.stderr)
PYEOF

iconv -f utf-8 -t utf-8 "$OUT/en.txt" > /dev/null
iconv -f utf-8 -t utf-8 "$OUT/zh.txt" > /dev/null
iconv -f utf-8 -t utf-8 "$OUT/code.jsonl" > /dev/null
ls -l "$OUT" >&2
