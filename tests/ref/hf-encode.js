#!/usr/bin/env node
// hf-encode.js TOKENIZER_JSON [--special] - the reference encoder for evo's
// tests: HF tokenizers (the official Rust core, native N-API binary).
// Reads stdin as UTF-8 (invalid bytes become U+FFFD, WHATWG maximal
// subpart, as node does), one document per line (split on "\n" only, a
// "\r" stays in its line), and prints each line's ids space-separated.
// --special sets add_special_tokens (BOS/EOS from the post-processor).
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.join(__dirname, 'node_modules', 'tokenizers'));

async function main() {
    const args = process.argv.slice(2);
    const special = args.includes('--special');
    const files = args.filter((a) => a !== '--special');
    if (files.length !== 1) {
        process.stderr.write('usage: hf-encode.js TOKENIZER_JSON [--special] <text >ids\n');
        process.exit(2);
    }
    const tok = Tokenizer.fromFile(files[0]);
    const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(fs.readFileSync(0));
    const lines = text.split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    const batch = 1000;
    for (let i = 0; i < lines.length; i += batch) {
        const encs = await tok.encodeBatch(lines.slice(i, i + batch), { addSpecialTokens: special });
        const out = encs.map((e) => e.getIds().join(' ')).join('\n') + '\n';
        if (!process.stdout.write(out))
            await new Promise((r) => process.stdout.once('drain', r));
    }
}

main().catch((err) => {
    process.stderr.write(`hf-encode.js: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
