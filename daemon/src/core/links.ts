/** Links in e-mails, built from the configured public base URL. */

/** An absolute URL under `base` for `pathname` with optional query parameters. */
export function publicLink(base: string, pathname: string, query: Record<string, string> = {}): string {
  const url = new URL(pathname.replace(/^\//, ''), base.endsWith('/') ? base : `${base}/`);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  return url.toString();
}
