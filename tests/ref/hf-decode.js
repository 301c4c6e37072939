#!/usr/bin/env node
// hf-decode.js TOKENIZER_JSON - the reference decoder for evo's tests: reads
// one line of space-separated ids per document on stdin and prints each
// document's text as HF tokenizers decodes it (skip_special_tokens=false).
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.join(__dirname, 'node_modules', 'tokenizers'));

async function main() {
    const args = process.argv.slice(2);
    if (args.length !== 1) {
        process.stderr.write('usage: hf-decode.js TOKENIZER_JSON <ids >text\n');
        process.exit(2);
    }
    const tok = Tokenizer.fromFile(args[0]);
    const lines = fs.readFileSync(0, 'utf8').split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    const ids = lines.map((l) => (l.trim() ? l.trim().split(' ').map(Number) : []));
    const out = [];
    for (let i = 0; i < ids.length; i += 1000) {
        const texts = await tok.decodeBatch(ids.slice(i, i + 1000), false);
        for (const t of texts) out.push(t);
    }
    fs.writeSync(1, out.map((t) => t + '\n').join(''));
}

main().catch((err) => {
    process.stderr.write(`hf-decode.js: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
