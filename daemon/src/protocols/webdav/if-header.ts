/**
 * The WebDAV If header (RFC 4918 section 10.4): parsed strictly (a malformed header is a 400,
 * never an exception escaping the request) and evaluated against the resources it names.
 */
import { fail } from '../../core/errors.ts';

/** One condition: a state token (lock token URI) or an entity tag, possibly negated. */
export interface IfCondition {
  not: boolean;
  token?: string;
  etag?: string;
}

/** One list of conditions, tagged with a resource (URL) or untagged (the request URL). */
export interface IfList {
  tag: string | null;
  conditions: IfCondition[];
}

const MAX_LISTS = 64;
const MAX_CONDITIONS = 64;

/** Parses an If header value; SEALDROP_E_VALIDATION if it is malformed. */
export function parseIf(value: string): IfList[] {
  const bad = (why: string) => fail('SEALDROP_E_VALIDATION', `malformed If header: ${why}`);
  const lists: IfList[] = [];
  let i = 0;
  let tag: string | null = null;
  let tagged: boolean | null = null;
  const ws = () => {
    while (i < value.length && /\s/.test(value[i] as string)) i++;
  };
  const until = (close: string): string => {
    const end = value.indexOf(close, i + 1);
    if (end < 0) throw bad(`missing ${close}`);
    const inner = value.slice(i + 1, end);
    i = end + 1;
    return inner;
  };
  ws();
  if (i >= value.length) throw bad('empty');
  while (i < value.length) {
    const c = value[i];
    if (c === '<') {
      if (tagged === false) throw bad('a resource tag after an untagged list');
      tagged = true;
      tag = until('>').trim();
      if (!tag) throw bad('empty resource tag');
      ws();
      if (value[i] !== '(') throw bad('a resource tag without a list');
      continue;
    }
    if (c === '(') {
      if (tagged === null) tagged = false;
      i++;
      const conditions: IfCondition[] = [];
      for (;;) {
        ws();
        if (i >= value.length) throw bad('unterminated list');
        if (value[i] === ')') {
          i++;
          break;
        }
        let not = false;
        if (/^not\b/i.test(value.slice(i, i + 4)) && /\s|<|\[/.test(value[i + 3] ?? '')) {
          not = true;
          i += 3;
          ws();
        }
        if (value[i] === '<') {
          const token = until('>').trim();
          if (!token || /\s/.test(token)) throw bad('malformed state token');
          conditions.push({ not, token });
        } else if (value[i] === '[') {
          const etag = until(']').trim();
          if (!/^(W\/)?"[^"]*"$/.test(etag)) throw bad('malformed entity tag');
          conditions.push({ not, etag });
        } else {
          throw bad(`unexpected ${JSON.stringify(value[i])}`);
        }
        if (conditions.length > MAX_CONDITIONS) throw bad('too many conditions');
      }
      if (conditions.length === 0) throw bad('an empty list');
      lists.push({ tag: tagged ? tag : null, conditions });
      if (lists.length > MAX_LISTS) throw bad('too many lists');
      ws();
      continue;
    }
    throw bad(`unexpected ${JSON.stringify(c)}`);
  }
  return lists;
}

/** What evaluation needs to know about a resource named by the header. */
export interface IfResource {
  /** The resource's current entity tag, or null if it does not exist. */
  etag: string | null;
  /** Lock tokens of the live locks covering it. */
  lockTokens: ReadonlySet<string>;
}

/**
 * Evaluates the header: true if any list holds for its resource. A state token holds if it names
 * a live lock covering that resource; an entity tag if it equals the resource's (weak tags
 * compare by value). `resource` resolves a tag (null: the request URL).
 */
export async function evaluateIf(lists: IfList[], resource: (tag: string | null) => Promise<IfResource>): Promise<boolean> {
  const cache = new Map<string, IfResource>();
  for (const list of lists) {
    const key = list.tag ?? '';
    let r = cache.get(key);
    if (!r) {
      r = await resource(list.tag);
      cache.set(key, r);
    }
    const held = list.conditions.every((c) => {
      const match = c.token !== undefined ? r.lockTokens.has(c.token) : r.etag !== null && c.etag?.replace(/^W\//, '') === r.etag.replace(/^W\//, '');
      return c.not ? !match : match;
    });
    if (held) return true;
  }
  return false;
}

/** Every lock token the header names in a positive condition (the tokens the request submits). */
export function submittedTokens(lists: IfList[]): Set<string> {
  const out = new Set<string>();
  for (const l of lists) for (const c of l.conditions) if (c.token && !c.not) out.add(c.token);
  return out;
}
