/* npm run size: the client as one minified ES module (its files joined in
 * dependency order, terser), and that gzipped: what a browser downloads. */
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { minify } from 'terser';

const files = ['backoff.js', 'emitter.js', 'errors.js', 'client.js'];
const src = new URL('../src/', import.meta.url);
const names = [];
let joined = '';
for (const f of files) {
  const text = readFileSync(new URL(f, src), 'utf8')
    .replace(/^import [^;]*;$/gm, '')
    .replace(/^export (const|class|function) (\w+)/gm, (all, kind, name) => { names.push(name); return kind + ' ' + name; });
  joined += text + '\n';
}
joined += 'export { ' + names.join(', ') + ' };\n';
const out = await minify(joined, { module: true, compress: { passes: 2 }, mangle: true });
const gz = gzipSync(out.code, { level: 9 });
console.log('tickgate-client: %d bytes source, %d minified, %d minified+gzipped',
  Buffer.byteLength(joined), Buffer.byteLength(out.code), gz.length);
