/**
 * Searches files for secrets ("canaries") in every encoding a leak could take: raw, JSON string
 * escaped, URL-encoded, base64 (all three alignments), hex.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** The byte patterns under which `secret` could appear. */
export function encodings(secret: string): Array<{ how: string; bytes: Buffer }> {
  const raw = Buffer.from(secret, 'utf8');
  const out = [
    { how: 'raw', bytes: raw },
    { how: 'json', bytes: Buffer.from(JSON.stringify(secret).slice(1, -1), 'utf8') },
    { how: 'url', bytes: Buffer.from(encodeURIComponent(secret), 'utf8') },
    { how: 'hex', bytes: Buffer.from(raw.toString('hex'), 'utf8') },
  ];
  // base64 of the secret at each of the three byte alignments, trimmed to the stable middle.
  for (let shift = 0; shift < 3; shift++) {
    const b64 = Buffer.concat([Buffer.alloc(shift), raw]).toString('base64');
    const start = Math.ceil((shift * 4) / 3) + 1;
    const stable = b64.slice(start, Math.floor(((shift + raw.length) * 4) / 3) - 1);
    if (stable.length >= 8) {
      out.push({ how: `base64+${shift}`, bytes: Buffer.from(stable, 'utf8') });
      out.push({ how: `base64url+${shift}`, bytes: Buffer.from(stable.replace(/\+/g, '-').replace(/\//g, '_'), 'utf8') });
    }
  }
  return out;
}

/** Every regular file under the given paths. */
export function filesUnder(...roots: string[]): string[] {
  const files: string[] = [];
  const walk = (p: string) => {
    let st;
    try {
      st = statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(path.join(p, e));
    else if (st.isFile()) files.push(p);
  };
  roots.forEach(walk);
  return files;
}

/** Hits of any canary in any file: "file: name (encoding)". Empty means clean. */
export function findCanaries(files: string[], canaries: Record<string, string>, extraBuffers: Record<string, Buffer> = {}): string[] {
  const patterns = Object.entries(canaries).flatMap(([name, secret]) => encodings(secret).map((e) => ({ name, ...e })));
  const hits: string[] = [];
  const scan = (label: string, content: Buffer) => {
    for (const p of patterns) if (content.includes(p.bytes)) hits.push(`${label}: ${p.name} (${p.how})`);
  };
  for (const f of files) scan(f, readFileSync(f));
  for (const [label, buf] of Object.entries(extraBuffers)) scan(label, buf);
  return hits;
}
