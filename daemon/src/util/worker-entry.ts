/**
 * Where a worker thread's script is. From the sources (tsx) it is `<name>-entry.mjs` beside the
 * calling module, which registers the TypeScript loader first; in the bundle (dist/) it is
 * `<name>.mjs`, plain JavaScript beside the bundle.
 */
export function workerEntry(moduleUrl: string, name: string): URL {
  return new URL(moduleUrl.endsWith('.ts') ? `./${name}-entry.mjs` : `./${name}.mjs`, moduleUrl);
}
