/**
 * Message catalogues (admin-ui/locales/<locale>.json, flat keys) and the choice of language:
 * the `sd_lang` cookie (set by the switch), else Accept-Language, else English.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { UI_DIRS } from './assets.ts';

/** Languages of the UI. */
export const LOCALES = ['en', 'de'] as const;
/** A UI language. */
export type Locale = (typeof LOCALES)[number];

type Messages = Record<string, string>;

const catalogs = new Map<Locale, Messages>();

function catalog(locale: Locale): Messages {
  let c = catalogs.get(locale);
  if (!c) {
    c = JSON.parse(readFileSync(path.join(UI_DIRS.locales, `${locale}.json`), 'utf8')) as Messages;
    catalogs.set(locale, c);
  }
  return c;
}

/** Every key of a catalogue (tests compare them across languages). */
export function catalogKeys(locale: Locale): string[] {
  return Object.keys(catalog(locale));
}

/** The translation of `key` with `{name}` placeholders filled; the key itself if missing. */
export function translate(locale: Locale, key: string, params: Record<string, unknown> = {}): string {
  const text = catalog(locale)[key] ?? catalog('en')[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, k: string) => (params[k] === undefined ? m : String(params[k])));
}

const errorTextsCache = new Map<Locale, string>();

/** The `error.<code>` texts of a language as JSON `{code: text}`, for the browser code of the pages. */
export function errorTexts(locale: Locale): string {
  let json = errorTextsCache.get(locale);
  if (json === undefined) {
    const texts: Record<string, string> = {};
    for (const key of Object.keys(catalog('en'))) if (key.startsWith('error.SEALDROP_E_')) texts[key.slice('error.'.length)] = translate(locale, key);
    json = JSON.stringify(texts);
    errorTextsCache.set(locale, json);
  }
  return json;
}

/** Picks the language from the cookie or the Accept-Language header. */
export function negotiate(cookie: string | undefined, acceptLanguage: string | undefined): Locale {
  if (cookie && (LOCALES as readonly string[]).includes(cookie)) return cookie as Locale;
  const wanted = (acceptLanguage ?? '')
    .split(',')
    .map((part) => {
      const [tag, ...params] = part.trim().split(';');
      const q = Number(params.find((x) => x.trim().startsWith('q='))?.split('=')[1] ?? 1);
      return { lang: (tag ?? '').toLowerCase().split('-')[0] ?? '', q: Number.isFinite(q) ? q : 0 };
    })
    .sort((a, b) => b.q - a.q);
  for (const w of wanted) if ((LOCALES as readonly string[]).includes(w.lang)) return w.lang as Locale;
  return 'en';
}
