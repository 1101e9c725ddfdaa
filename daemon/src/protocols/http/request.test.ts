import { describe, expect, it } from 'vitest';
import { hasNul } from './request.ts';

describe('hasNul', () => {
  it('finds a NUL in any string or key of a parsed JSON value, however deep', () => {
    expect(hasNul({ a: 'plain', b: [1, true, null, { c: 'x' }] })).toBe(false);
    expect(hasNul({ a: 'a\u0000b' })).toBe(true);
    expect(hasNul({ a: [[['x', { y: '\u0000' }]]] })).toBe(true);
    expect(hasNul({ 'k\u0000': 1 })).toBe(true);
  });

  it('walks a very large array without overflowing the call stack', () => {
    const many = new Array<number>(500_000).fill(0);
    expect(hasNul({ many })).toBe(false);
    many.push('\u0000' as unknown as number);
    expect(hasNul({ many })).toBe(true);
  });
});
