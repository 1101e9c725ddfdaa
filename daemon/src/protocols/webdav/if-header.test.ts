import { describe, expect, it } from 'vitest';
import { isSealdropError } from '../../core/errors.ts';
import { evaluateIf, parseIf, submittedTokens } from './if-header.ts';
import { basicAllowed } from './index.ts';

const T1 = 'opaquelocktoken:11111111-1111-1111-1111-111111111111';

describe('the If header', () => {
  it('parses untagged and tagged lists, Not, entity tags', () => {
    expect(parseIf(`(<${T1}> ["abc"]) (Not <DAV:no-lock>)`)).toEqual([
      { tag: null, conditions: [{ not: false, token: T1 }, { not: false, etag: '"abc"' }] },
      { tag: null, conditions: [{ not: true, token: 'DAV:no-lock' }] },
    ]);
    expect(parseIf(`<http://h/dav/a> (<${T1}>) </dav/b> ([W/"x"])`)).toEqual([
      { tag: 'http://h/dav/a', conditions: [{ not: false, token: T1 }] },
      { tag: '/dav/b', conditions: [{ not: false, etag: 'W/"x"' }] },
    ]);
    expect([...submittedTokens(parseIf(`(<${T1}>) (Not <urn:x>)`))]).toEqual([T1]);
  });

  it('refuses malformed headers with a validation error, never an exception of another kind', () => {
    for (const bad of ['', '(', '()', '((((<<<>>>', '<x>', ')(', '([unterminated)', '(<a b>)', '(Not)', '(["no-quotes])', '<x> y', '(<a>) <b> (<c>)', '(' + '<t>'.repeat(100) + ')']) {
      let err: unknown;
      try {
        parseIf(bad);
      } catch (e) {
        err = e;
      }
      expect(isSealdropError(err, 'SEALDROP_E_VALIDATION'), bad).toBe(true);
    }
  });

  it('holds if any list holds for its resource', async () => {
    const here = { etag: '"e1"', lockTokens: new Set([T1]) };
    const gone = { etag: null, lockTokens: new Set<string>() };
    const resource = async (tag: string | null) => (tag === '/dav/gone' ? gone : here);
    expect(await evaluateIf(parseIf(`(<${T1}>)`), resource)).toBe(true);
    expect(await evaluateIf(parseIf(`(<${T1}> ["e2"])`), resource)).toBe(false);
    expect(await evaluateIf(parseIf(`(<${T1}> ["e2"]) (Not <DAV:no-lock> ["e1"])`), resource)).toBe(true);
    expect(await evaluateIf(parseIf('(<DAV:no-lock>)'), resource)).toBe(false);
    expect(await evaluateIf(parseIf(`</dav/gone> (<${T1}>)`), resource)).toBe(false);
    expect(await evaluateIf(parseIf('([W/"e1"])'), resource)).toBe(true);
  });
});

describe('HTTP Basic', () => {
  it('is allowed over TLS, on loopback connections, or when configured', () => {
    expect(basicAllowed(false, '127.0.0.1', false)).toBe(true);
    expect(basicAllowed(false, '::1', false)).toBe(true);
    expect(basicAllowed(false, '::ffff:127.0.0.1', false)).toBe(true);
    expect(basicAllowed(false, '192.0.2.10', false)).toBe(false);
    expect(basicAllowed(false, undefined, false)).toBe(false);
    expect(basicAllowed(true, '192.0.2.10', false)).toBe(true);
    expect(basicAllowed(false, '192.0.2.10', true)).toBe(true);
  });
});
