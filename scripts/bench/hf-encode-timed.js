// Times the HuggingFace tokenizers library (npm "tokenizers", the Rust core
// as a native module) encoding FILE line by line with encodeBatch, the fast
// path, and prints the ids (a line per document) to stdout and
// "seconds bytes" to stderr. Only encoding is timed: loading and printing
// are not, which favours the reference.
//   node hf-encode-timed.js TOKENIZER_JSON FILE
// Threads: RAYON_NUM_THREADS=1 for one core.
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.join(__dirname, '../../tests/ref/node_modules/tokenizers'));

async function main() {
  const [tokPath, file] = process.argv.slice(2);
  const tok = Tokenizer.fromFile(tokPath);
  const raw = fs.readFileSync(file);
  const lines = raw.toString('utf8').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const out = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < lines.length; i += 1000) {
    const encs = await tok.encodeBatch(lines.slice(i, i + 1000), { addSpecialTokens: false });
    for (const e of encs) out.push(e.getIds());
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stderr.write(`${secs} ${raw.length}\n`);
  const chunks = [];
  for (const ids of out) chunks.push(ids.join(' '));
  fs.writeSync(1, chunks.join('\n') + (chunks.length ? '\n' : ''));
}
main().catch((e) => { console.error(e); process.exit(1); });
