#!/usr/bin/python3
"""make-mixed.py - generate evo's "hard" tokenizer/pipeline test text.

    /usr/bin/python3 tests/data/make-mixed.py [OUTDIR]     (default: tests/data)

Writes, deterministically (fixed seed, inputs only from data/corpus/):

  mixed.txt        ~1.40 MB, one document per line ('\\n' only, never '\\r').
                   Lines mix corpus English / Chinese / code with emoji (ZWJ
                   sequences, flags, skin tones, keycaps), C0 controls and DEL,
                   INVALID UTF-8 (lone continuation bytes, truncated 2/3/4-byte
                   sequences, overlong forms, 0xFE/0xFF, UTF-8-encoded
                   surrogates, code points > U+10FFFF), long whitespace runs,
                   very long "words" (2,000-20,000 letters, digit runs,
                   repeated Han), fullwidth / compatibility characters,
                   Hangul jamo, Arabic, Devanagari, precomposed and decomposed
                   accents, zero-width characters, U+FEFF in mid text, special
                   token strings (<|im_start|>, <s>, </s>, <unk>, ...), empty
                   lines and lines of only spaces.
  mixed-valid.txt  the same lines with every invalid byte sequence removed
                   (bytes.decode('utf-8', 'ignore') per line; same number of
                   lines, line i corresponds to line i).

Lines are separated by '\n' only. U+0085, U+2028 and U+2029 are never emitted,
but \x0b and \x0c are, so split on '\n' (Python: str.split('\n'), not
str.splitlines(), which also breaks at \x0b/\x0c).
Not committed; regenerated at test time (runs in well under a second).
"""
import json
import os
import random
import sys

SEED = 20240521
TARGET = 1_400_000            # bytes of mixed.txt (mixed-valid.txt is slightly smaller)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(ROOT, 'data', 'corpus')
OUTDIR = sys.argv[1] if len(sys.argv) > 1 else HERE

rng = random.Random(SEED)


def read_lines(name):
    with open(os.path.join(CORPUS, name), encoding='utf-8') as f:
        return [l.rstrip('\n') for l in f if l.strip()]


EN = read_lines('en.txt')
ZH = read_lines('zh.txt')
with open(os.path.join(CORPUS, 'code.jsonl'), encoding='utf-8') as f:
    CODE = [json.loads(l)['text'].replace('\r', '') for l in f]

# ------------------------------------------------------------ ingredients --
EMOJI = [
    '😀', '😂', '🤣', '😍', '🥲', '🤖', '👍', '🙏', '🔥', '✨', '🎉', '❤️', '❤', '☺️',
    '👍🏻', '👍🏼', '👍🏽', '👍🏾', '👍🏿', '👋🏽', '🧑🏿‍🦱', '👩🏽‍💻', '👨🏻‍🔬',
    '👨‍👩‍👧‍👦', '👩‍❤️‍💋‍👨', '🏳️‍🌈', '🏳️‍⚧️', '🏴‍☠️', '🐻‍❄️', '😶‍🌫️', '❤️‍🔥',
    '🇨🇳', '🇺🇸', '🇯🇵', '🇩🇪', '🇫🇷', '🇧🇷', '🇺🇦', '🇪🇺', '🏴󠁧󠁢󠁳󠁣󠁴󠁿',
    '1️⃣', '#️⃣', '*️⃣', '©️', '™️', '🅰️', '🈶', '🀄', '🃏', '𓀀', '🫠', '🫶🏼',
]
CONTROLS = [chr(c) for c in range(0x01, 0x09)] + ['\x0b', '\x0c', '\x1b', '\x7f']
ANSI = ['\x1b[31m', '\x1b[0m', '\x1b[1;32m', '\x1b[2J', '\x1b]0;title\x07']
INVALID = [
    b'\x80', b'\xbf', b'\x80\x80', b'\x80\xbf\x80', b'\xa0\xa1',          # lone continuation
    b'\xc3', b'\xdf', b'\xc2',                                           # truncated 2-byte
    b'\xe4\xb8', b'\xe2\x82', b'\xe4', b'\xef\xbf',                      # truncated 3-byte
    b'\xf0\x9f\x98', b'\xf0\x9f', b'\xf0', b'\xf4\x8f\xbf',              # truncated 4-byte
    b'\xc0\xaf', b'\xc1\xbf', b'\xc0\x80', b'\xe0\x80\xaf', b'\xe0\x9f\xbf',
    b'\xf0\x80\x80\xaf', b'\xf0\x8f\xbf\xbf',                            # overlong
    b'\xfe', b'\xff', b'\xfe\xff', b'\xff\xfe', b'\xf8\x88\x80\x80\x80',
    b'\xfc\x84\x80\x80\x80\x80',                                         # never valid
    b'\xed\xa0\x80', b'\xed\xbf\xbf', b'\xed\xa0\xbd\xed\xb8\x80',      # surrogates
    b'\xf4\x90\x80\x80', b'\xf5\x80\x80\x80', b'\xf7\xbf\xbf\xbf',      # > U+10FFFF
]
SPECIAL = ['<|im_start|>', '<|im_end|>', '<s>', '</s>', '<unk>', '<pad>', '<mask>',
           '<|begin_of_text|>', '<|end_of_text|>', '<|endoftext|>', '<|eot_id|>',
           '<|im_start|>user', '<|im_start|>assistant\n'.replace('\n', ' '),
           '<|im_start|>system<|im_end|>', '<s><s></s>', '<|im_start', 'im_end|>',
           '< s >', '<unk >', '[CLS]', '[SEP]', '<0x41>', '<0xE4>', '▁', '▁▁▁']
ZERO_WIDTH = ['\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00ad', '\u034f',
              '\u200e', '\u200f', '\u202e', '\u202c', '\u2066', '\u2069', '\u180e']
SPACES = [' ', '\t', '\u00a0', '\u3000', '\u2002', '\u2003', '\u2009', '\u200a',
          '\u202f', '\u205f', '\u1680']
COMPAT = [
    'ｆｕｌｌｗｉｄｔｈ', 'ＡＢＣ１２３', 'ｈｅｌｌｏ，ｗｏｒｌｄ！', '（全角括号）', '？！：；',
    'ｶﾀｶﾅ', 'ﾊﾟﾋﾞﾌﾟ', '①②③④⑤⑩⑳', '⑴⑵⒜⒝', 'Ⅰ Ⅱ Ⅲ Ⅻ ⅻ', '¹²³⁴⁵ ₀₁₂', '½ ¼ ⅞',
    'ﬁ ﬂ ﬀ ﬃ ﬄ ﬅ ﬆ', 'ﬁnance ofﬁce', '㎏ ㎞ ㎒ ㎖ ㏄ ℃ ℉ № ™ ℡', '㍻ ㋿ ㈱ ㊤',
    'ℌ ℍ ℕ ℤ ℝ 𝐀𝐁𝐂 𝕏 𝔉 𝒜', 'Å Å Å', 'Ω Ω', 'K K', 'µ μ', 'ǆ ǅ Ǆ', 'ſt ß ẞ',
    '\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af', '한국어 한글', 'ㄱㄴㄷ ㅏㅑ',
    'ᄀ ᅡ ᆨ', 'العربية مرحبا بالعالم', 'ﻻ ﷺ ﷽', 'سلام ٠١٢٣٤٥٦٧٨٩',
    'हिन्दी देवनागरी नमस्ते', 'क्षत्रिय ज्ञान', '१२३४५',
    'e\u0301 é', 'caf\u00e9 cafe\u0301', 'A\u030a Å', 'n\u0303 ñ', 'o\u0308 ö',
    'ệ e\u0323\u0302 ê\u0323', 'Tiếng Việt', 'Z\u0351\u0353\u034ca\u0352\u0340l\u035fg\u0327o\u0334',
    'ḁ\u0307\u0308\u0301', '한\u0301', 'ß SS ﬀ', 'İ ı i̇', 'ﬆrasse', '¨ ´ ¸',
    'ぱ は\u309a ば は\u3099', 'ガ ｶﾞ カ\u3099', '〇一二三', '𠀀𠀁𪚥 𡃁', '\ue000\uf8ff',
    '\ufffd \ufffe \uffff', '\U0010fffd', 'אבג עברית', 'Ελληνικά ΣΊΣΥΦΟΣ ς',
    'Русский язык Ёё', 'ไทย ภาษาไทย', '日本語のテキスト', 'ᚠᛇᚻ ᛒᛦᚦ', '⠓⠑⠇⠇⠕',
]
LETTERS = 'abcdefghijklmnopqrstuvwxyz'
HAN_RUNS = ['的', '中文', '哈', '测试字符', '。', '龘', '𠀀']


# ------------------------------------------------------------ line makers --
# Every maker returns a list of parts; a part is a str (valid text) or bytes
# (an invalid UTF-8 sequence).

def snippet(src, lo=40, hi=2500):
    s = rng.choice(src)
    n = rng.randint(lo, hi)
    if len(s) <= n:
        return s
    i = rng.randrange(0, len(s) - n)
    return s[i:i + n]


def code_flat(keep_ws):
    t = rng.choice(CODE)
    n = rng.randint(200, 4000)
    if len(t) > n:
        i = rng.randrange(0, len(t) - n)
        t = t[i:i + n]
    if keep_ws:
        out = []
        for l in t.split('\n'):
            out.append(l)
            if rng.random() < 0.3:
                out.append(' ' * rng.randint(2, 40))
            elif rng.random() < 0.1:
                out.append('\t' * rng.randint(1, 6))
        return ' '.join(out)
    return ' '.join(l.strip() for l in t.split('\n') if l.strip())


def sprinkle(text, choices, rate):
    """Insert random items of `choices` between characters of text."""
    k = max(1, int(len(text) * rate))
    pos = sorted(rng.randrange(0, len(text) + 1) for _ in range(k))
    out, last = [], 0
    for p in pos:
        out.append(text[last:p])
        out.append(rng.choice(choices))
        last = p
    out.append(text[last:])
    return out


def mk_en():
    return [snippet(EN)]


def mk_zh():
    return [snippet(ZH, 20, 1500)]


def mk_code():
    return [code_flat(False)]


def mk_code_ws():
    return [code_flat(True)]


def mk_emoji():
    base = snippet(rng.choice([EN, ZH]), 40, 600)
    return sprinkle(base, EMOJI, 0.04) + [''.join(rng.choice(EMOJI) for _ in range(rng.randint(1, 30)))]


def mk_controls():
    base = snippet(rng.choice([EN, ZH]), 40, 800)
    return sprinkle(base, CONTROLS + ANSI, 0.03)


def mk_invalid():
    base = snippet(rng.choice([EN, ZH, EN]), 20, 800)
    parts = sprinkle(base, INVALID, 0.02)
    parts = [bytes(p) if isinstance(p, bytes) else p for p in parts]
    r = rng.random()
    if r < 0.2:
        parts.insert(0, rng.choice(INVALID))          # at line start
    elif r < 0.4:
        parts.append(rng.choice(INVALID))             # at line end (truncated)
    elif r < 0.45:
        return [rng.choice(INVALID) for _ in range(rng.randint(1, 20))]   # only garbage
    return parts


def mk_whitespace():
    parts = []
    for _ in range(rng.randint(1, 6)):
        parts.append(snippet(EN, 5, 120))
        kind = rng.random()
        if kind < 0.5:
            parts.append(' ' * rng.randint(2, 400))
        elif kind < 0.7:
            parts.append('\t' * rng.randint(1, 50))
        else:
            parts.append(''.join(rng.choice(SPACES) for _ in range(rng.randint(2, 200))))
    if rng.random() < 0.3:
        parts.insert(0, ' ' * rng.randint(1, 100))
    return parts


def mk_long_word():
    n = rng.randint(2000, 20000)
    kind = rng.random()
    if kind < 0.35:
        w = ''.join(rng.choice(LETTERS) for _ in range(n))
    elif kind < 0.5:
        w = rng.choice(LETTERS) * n
    elif kind < 0.7:
        w = ''.join(rng.choice('0123456789') for _ in range(n))
    elif kind < 0.85:
        h = rng.choice(HAN_RUNS)
        w = (h * (n // len(h) + 1))[:n // 3]         # ~n bytes of UTF-8
    else:
        w = ('ab' * n)[:n] if rng.random() < 0.5 else ('Supercalifragilistic' * (n // 20 + 1))[:n]
    pre = snippet(EN, 0, 80) + ' ' if rng.random() < 0.7 else ''
    post = ' ' + snippet(EN, 0, 80) if rng.random() < 0.7 else ''
    return [pre + w + post]


def mk_compat():
    base = snippet(rng.choice([EN, ZH]), 20, 400)
    return sprinkle(base, COMPAT, 0.02) + [' '.join(rng.sample(COMPAT, rng.randint(2, 8)))]


def mk_zero_width():
    base = snippet(rng.choice([EN, ZH]), 20, 600)
    return sprinkle(base, ZERO_WIDTH, 0.03)


def mk_special():
    base = snippet(rng.choice([EN, ZH, EN]), 20, 600)
    parts = sprinkle(base, SPECIAL, 0.01)
    if rng.random() < 0.3:
        parts = ['<|im_start|>user ', *parts, '<|im_end|>']
    return parts


def mk_empty():
    return ['']


def mk_spaces_only():
    r = rng.random()
    if r < 0.6:
        return [' ' * rng.randint(1, 80)]
    if r < 0.8:
        return ['\t' * rng.randint(1, 10)]
    return [''.join(rng.choice(SPACES) for _ in range(rng.randint(1, 40)))]


def mk_kitchen_sink():
    makers = [mk_en, mk_zh, mk_emoji, mk_controls, mk_invalid, mk_compat,
              mk_zero_width, mk_special, mk_whitespace]
    parts = []
    for m in rng.sample(makers, rng.randint(2, 5)):
        parts += m()
        parts.append(rng.choice([' ', '', '\t', '  ']))
    return parts


MAKERS = [  # (weight, maker)
    (24, mk_en), (14, mk_zh), (5, mk_code), (4, mk_code_ws), (6, mk_emoji),
    (5, mk_controls), (7, mk_invalid), (5, mk_whitespace), (1.2, mk_long_word),
    (6, mk_compat), (5, mk_zero_width), (5, mk_special), (3, mk_empty),
    (3, mk_spaces_only), (6, mk_kitchen_sink),
]
WEIGHTS = [w for w, _ in MAKERS]
FUNCS = [f for _, f in MAKERS]


def main():
    mixed, valid, size = [], [], 0
    # make sure every kind occurs near the top of the file
    order = list(FUNCS)
    while size < TARGET:
        f = order.pop(0) if order else rng.choices(FUNCS, WEIGHTS)[0]
        parts = f()
        b = b''.join(p if isinstance(p, bytes) else p.encode('utf-8') for p in parts)
        # "all invalid UTF-8 removed" == Python's strict decoder with errors='ignore'
        # (adjacent inserted fragments may happen to form a valid character)
        v = b.decode('utf-8', 'ignore').encode('utf-8')
        for ch in (b'\n', b'\r'):
            assert ch not in b
        for bad in ('\u0085', '\u2028', '\u2029'):
            assert bad.encode() not in v
        mixed.append(b)
        valid.append(v)
        size += len(b) + 1
    os.makedirs(OUTDIR, exist_ok=True)
    with open(os.path.join(OUTDIR, 'mixed.txt'), 'wb') as f:
        f.write(b'\n'.join(mixed) + b'\n')
    with open(os.path.join(OUTDIR, 'mixed-valid.txt'), 'wb') as f:
        f.write(b'\n'.join(valid) + b'\n')
    vb = sum(len(v) + 1 for v in valid)
    print(f'make-mixed: {len(mixed)} lines, mixed.txt {size} B, mixed-valid.txt {vb} B',
          file=sys.stderr)


if __name__ == '__main__':
    main()
