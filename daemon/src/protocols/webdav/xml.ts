/**
 * WebDAV XML: request bodies parsed with namespaces (no DTDs, bounded size), and multistatus
 * and lock responses written as escaped strings.
 */
import { createRequire } from 'node:module';
import type * as XmldomModule from '@xmldom/xmldom';
import type { Element, Node } from '@xmldom/xmldom';
import { fail } from '../../core/errors.ts';

/** The DAV: namespace. */
export const DAV = 'DAV:';

type Xmldom = typeof XmldomModule;
let xmldom: Xmldom | undefined;
/** The XML parser, loaded at the first WebDAV request with a body (~2.5 MB a daemon without WebDAV clients never needs). */
function lib(): Xmldom {
  xmldom ??= createRequire(import.meta.url)('@xmldom/xmldom') as Xmldom;
  return xmldom;
}

/** `{namespace}localName`. */
export type PropName = string;

/** A property name from its namespace and local name. */
export function propName(ns: string | null, local: string): PropName {
  return `{${ns ?? ''}}${local}`;
}

/** The namespace and local name of a property name. */
export function splitPropName(name: PropName): { ns: string; local: string } {
  const end = name.indexOf('}');
  return { ns: name.slice(1, end), local: name.slice(end + 1) };
}

/** Escapes text and attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

/**
 * Parses a request body. Refuses DTDs (no entity expansion of any kind) and malformed XML with
 * SEALDROP_E_VALIDATION; returns null for an empty body.
 */
export function parseXml(body: Buffer): Element | null {
  const text = body.toString('utf8');
  if (text.trim() === '') return null;
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw fail('SEALDROP_E_VALIDATION', 'XML with a document type declaration is not accepted');
  // The parser takes characters XML 1.0 does not allow, written as they are or as a character
  // reference: a NUL or a lone surrogate would then reach a property value or a lock owner, and
  // the database.
  if (NOT_XML_CHAR.test(text)) throw fail('SEALDROP_E_VALIDATION', 'the XML body holds a character XML does not allow (a control character)');
  const ref = forbiddenCharRef(text);
  if (ref) throw fail('SEALDROP_E_VALIDATION', `the XML body refers to a character XML does not allow (${ref})`);
  let error: string | null = null;
  let doc: ReturnType<InstanceType<Xmldom['DOMParser']>['parseFromString']>;
  try {
    doc = new (lib().DOMParser)({
      onError: (level, message) => {
        if (level !== 'warning') error ??= message;
      },
    }).parseFromString(text, 'application/xml');
  } catch (err) {
    // Fatal errors (and namespace errors) are thrown by the parser.
    throw fail('SEALDROP_E_VALIDATION', `the XML body is not well-formed: ${String((err as Error).message).slice(0, 200)}`);
  }
  if (error || !doc.documentElement) throw fail('SEALDROP_E_VALIDATION', `the XML body is not well-formed: ${String(error ?? 'no root element').slice(0, 200)}`);
  checkNamespaces(doc.documentElement);
  return doc.documentElement;
}

/** A character outside XML 1.0's Char production (a lone surrogate included). */
const NOT_XML_CHAR = /[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;

/** The first character reference (`&#0;`, `&#xD800;`) to a character XML 1.0 does not allow, or null. */
function forbiddenCharRef(text: string): string | null {
  for (const m of text.matchAll(/&#(x[0-9a-f]+|[0-9]+);/gi)) {
    const digits = m[1] as string;
    const cp = digits[0] === 'x' || digits[0] === 'X' ? parseInt(digits.slice(1), 16) : parseInt(digits, 10);
    if (!(cp <= 0x10ffff) || NOT_XML_CHAR.test(String.fromCodePoint(cp))) return m[0].slice(0, 20);
  }
  return null;
}

/** Deepest element nesting accepted in a request body. */
const MAX_DEPTH = 64;

/**
 * Refuses prefixes bound to the empty namespace (`xmlns:a=""`, which XML 1.0 namespaces forbid)
 * and nesting deeper than MAX_DEPTH (walked without recursion).
 */
function checkNamespaces(root: Element): void {
  const stack: Array<[Element, number]> = [[root, 1]];
  while (stack.length) {
    const [el, depth] = stack.pop() as [Element, number];
    if (depth > MAX_DEPTH) throw fail('SEALDROP_E_VALIDATION', `the XML body is nested deeper than ${MAX_DEPTH} elements`);
    for (let i = 0; i < el.attributes.length; i++) {
      const a = el.attributes.item(i);
      if (a && a.name.startsWith('xmlns:') && a.value === '') throw fail('SEALDROP_E_VALIDATION', `the XML body binds prefix ${a.name.slice(6)} to no namespace`);
    }
    for (const c of children(el)) stack.push([c, depth + 1]);
  }
}

/** The element children of an element. */
export function children(el: Element): Element[] {
  const out: Element[] = [];
  for (let n: Node | null = el.firstChild; n; n = n.nextSibling) if (n.nodeType === 1) out.push(n as Element);
  return out;
}

/** True if the element is `{ns}local`. */
export function is(el: Element | null | undefined, ns: string, local: string): boolean {
  return Boolean(el) && (el as Element).namespaceURI === ns && (el as Element).localName === local;
}

/** The first child element `{ns}local`. */
export function child(el: Element, ns: string, local: string): Element | undefined {
  return children(el).find((c) => is(c, ns, local));
}

/** The name of an element as a property name. */
export function nameOf(el: Element): PropName {
  return propName(el.namespaceURI ?? '', el.localName ?? el.nodeName);
}

let serializer: InstanceType<Xmldom['XMLSerializer']> | undefined;

/** The content of an element as XML (its children, with the namespace declarations they need). */
export function innerXml(el: Element): string {
  let out = '';
  serializer ??= new (lib().XMLSerializer)();
  for (let n: Node | null = el.firstChild; n; n = n.nextSibling) out += serializer.serializeToString(n);
  return out;
}

/** A property element with its value (stored inner XML, or escaped text). */
export function propElement(name: PropName, inner: string): string {
  const { ns, local } = splitPropName(name);
  if (ns === DAV) return `<D:${local}>${inner}</D:${local}>`;
  if (ns === '') return `<${local} xmlns="">${inner}</${local}>`;
  return `<X:${local} xmlns:X="${esc(ns)}">${inner}</X:${local}>`;
}

/** An empty property element (for 404 lists and propname answers). */
export function emptyProp(name: PropName): string {
  const { ns, local } = splitPropName(name);
  if (ns === DAV) return `<D:${local}/>`;
  if (ns === '') return `<${local} xmlns=""/>`;
  return `<X:${local} xmlns:X="${esc(ns)}"/>`;
}

const REASONS: Record<number, string> = {
  200: 'OK',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  423: 'Locked',
  424: 'Failed Dependency',
  507: 'Insufficient Storage',
};

/** `HTTP/1.1 <code> <reason>`. */
export function statusLine(code: number): string {
  return `HTTP/1.1 ${code} ${REASONS[code] ?? ''}`.trim();
}

/** A whole multistatus document from `<D:response>` elements. */
export function multistatus(responses: string[]): string {
  return `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">${responses.join('')}</D:multistatus>\n`;
}

/** A DAV:error body with one precondition element. */
export function errorBody(condition: string): string {
  return `<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:${condition}/></D:error>\n`;
}
