import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../core/errors.ts';
import { UI_DIRS } from './assets.ts';
import { catalogKeys, errorTexts, negotiate, translate } from './i18n.ts';

const placeholders = (text: string): string[] => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string).sort();

describe('message catalogues', () => {
  it('English and German have the same keys, none empty, with the same placeholders', () => {
    const en = catalogKeys('en');
    expect(catalogKeys('de').sort()).toEqual([...en].sort());
    for (const key of en) {
      expect(translate('en', key).trim(), key).not.toBe('');
      expect(translate('de', key).trim(), key).not.toBe('');
      expect(placeholders(translate('de', key)), key).toEqual(placeholders(translate('en', key)));
    }
  });

  it('every error code of the core has a text in both languages, also for the browser code', () => {
    for (const code of Object.keys(ERROR_CODES)) {
      expect(translate('en', `error.${code}`), code).not.toBe(`error.${code}`);
      expect(JSON.parse(errorTexts('de'))[code], code).toBe(translate('de', `error.${code}`));
    }
  });

  it('every literal key a view or page uses exists', () => {
    const sources = [
      ...readdirSync(UI_DIRS.views).map((f) => path.join(UI_DIRS.views, f)),
      ...readdirSync(import.meta.dirname).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).map((f) => path.join(import.meta.dirname, f)),
    ];
    const keys = new Set(catalogKeys('en'));
    const missing: string[] = [];
    let used = 0;
    for (const file of sources) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\bt\('([a-zA-Z][\w.]*)'\s*[,)]/g)) {
        used++;
        if (!keys.has(m[1] as string)) missing.push(`${path.basename(file)}: ${m[1]}`);
      }
    }
    expect(used).toBeGreaterThan(100);
    expect(missing).toEqual([]);
  });

  it('fills placeholders and falls back to the key for unknown ones', () => {
    expect(translate('en', 'nav.logout', { email: 'a@b.example' })).toBe('Log out (a@b.example)');
    expect(translate('de', 'no.such.key')).toBe('no.such.key');
  });

  it('picks the language from the cookie, then Accept-Language by weight, else English', () => {
    expect(negotiate('de', 'en-US')).toBe('de');
    expect(negotiate('xx', 'fr;q=1, de-AT;q=0.8, en;q=0.5')).toBe('de');
    expect(negotiate(undefined, 'en;q=0.2, de;q=0.9')).toBe('de');
    expect(negotiate(undefined, 'fr, it')).toBe('en');
    expect(negotiate(undefined, undefined)).toBe('en');
    expect(negotiate(undefined, ';;;q=abc,,')).toBe('en');
  });
});
