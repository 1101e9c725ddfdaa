/**
 * The whole process through the web UI only, in headless Chromium (Debian `chromium`, driven by
 * playwright-core), against the real daemon with a real SMTP listener: a member sends a level-4
 * delivery from the browser, the recipient registers from the mailed link and sets the
 * SecuPass, the owner releases after checking the fingerprint, the recipient downloads; an admin
 * resets the recipient's SecuPass; the owner re-releases (key-changed warning) and the download
 * works again. Every request the browser makes is recorded and searched for the SecuPasses;
 * screenshots of each page in both languages go to docs/screenshots/.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodings } from './support/canary.ts';
import { ROOT, runCli, sandbox, startDaemonProcess, type DaemonProcess, type Sandbox } from './support/daemon-process.ts';
import { linkIn, SmtpCatcher } from './support/smtp.ts';

const CHROMIUM = '/usr/bin/chromium';
// Every run refreshes the committed screenshots (SEALDROP_UI_SCREENSHOTS names another folder).
const SHOTS = path.resolve(ROOT, process.env.SEALDROP_UI_SCREENSHOTS ?? 'docs/screenshots');
const KEYS = Object.keys(JSON.parse(readFileSync(path.join(ROOT, 'admin-ui', 'locales', 'en.json'), 'utf8')) as object);
const shown: string[] = [];
// The size of the file sent through the browser (SEALDROP_UI_TEST_MIB=300 for the large-file check).
const MIB = Number(process.env.SEALDROP_UI_TEST_MIB ?? 6);
/** Time for a step that moves the whole file through the page: 60 s plus 1 s per MiB. */
const FILE_STEP_MS = 60_000 + MIB * 1000;
const PW = { admin: 'admin password 24680', alice: 'alice password 13579', newbie: 'newbie password 97531' };
const SP = { alice: `alice secupass ${randomBytes(4).toString('hex')}`, newbie1: `first secupass ${randomBytes(4).toString('hex')}`, newbie2: `second secupass ${randomBytes(4).toString('hex')}` };
const XSS = '<img src=x onerror=alert(1)>';

let smtp: SmtpCatcher;
let sb: Sandbox;
let daemon: DaemonProcess;
const contexts: BrowserContext[] = [];
const BROWSER_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const requests: Array<{ url: string; headers: Record<string, string>; body: Buffer | null }> = [];
const dialogs: string[] = [];
const trace = (step: string): void => void (process.env.SEALDROP_UI_TRACE && process.stderr.write(`[ui ${new Date().toISOString().slice(11, 19)}] ${step}\n`));

async function context(locale = 'en-US'): Promise<BrowserContext> {
  // A browser profile on disk (as a user's is): the page's temporary files then live on disk,
  // where an in-memory (incognito) profile would hold them in the browser's memory.
  const profile = path.join(sb.dir, `profile-${contexts.length}`);
  const ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: BROWSER_ARGS, baseURL: daemon.url, locale, acceptDownloads: true, viewport: { width: 1100, height: 900 } });
  contexts.push(ctx);
  ctx.on('request', (req) => requests.push({ url: req.url(), headers: req.headers(), body: req.postDataBuffer() }));
  ctx.on('page', (p) => {
    p.on('dialog', (d) => void (dialogs.push(d.message()), d.dismiss()));
    p.on('console', (m) => trace(`console.${m.type()}: ${m.text()}`));
    p.on('pageerror', (e) => trace(`page error: ${e.message}`));
    p.on('response', (r) => {
      if (r.status() >= 400) void r.text().then((t) => trace(`${r.status()} ${r.request().method()} ${r.url()}: ${t.slice(0, 300)}`), () => undefined);
    });
  });
  return ctx;
}

/** Saves a screenshot and checks the page shows no untranslated catalogue key. */
async function shot(page: Page, name: string): Promise<void> {
  const text = await page.locator('body').innerText();
  expect(KEYS.filter((k) => text.includes(k)), `${name}: untranslated keys`).toEqual([]);
  shown.push(name);
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Screenshots the current page in English and, through the language switch, in German. */
async function shotBoth(page: Page, name: string): Promise<void> {
  const here = new URL(page.url());
  const back = encodeURIComponent(here.pathname + here.search);
  await shot(page, `en-${name}`);
  await page.goto(`/lang?l=de&next=${back}`);
  expect(await page.locator('html').getAttribute('lang')).toBe('de');
  await shot(page, `de-${name}`);
  await page.goto(`/lang?l=en&next=${back}`);
}

async function login(page: Page, email: string, password: string): Promise<void> {
  await page.goto('/login');
  await page.getByLabel('E-mail address').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/\/inbox$/);
}

async function setSecupass(page: Page, secupass: string): Promise<void> {
  await page.goto('/secupass');
  await page.getByLabel('SecuPass', { exact: true }).fill(secupass);
  await page.getByLabel('Repeat the SecuPass').fill(secupass);
  await page.getByRole('button', { name: 'Set up SecuPass' }).click();
  await page.waitForURL(/\/inbox$/, { timeout: 60_000 });
}

async function downloadFile(page: Page, deliveryId: string, secupass: string, name: string): Promise<{ bytes?: Buffer; status: string }> {
  await page.goto(`/deliveries/${deliveryId}`);
  await page.getByLabel('SecuPass').fill(secupass);
  const row = page.locator('ul.files li', { hasText: name });
  const downloaded = page.waitForEvent('download', { timeout: FILE_STEP_MS }).catch(() => undefined);
  await row.getByRole('button', { name: 'Download' }).click();
  const status = row.locator('.status');
  await expect.poll(async () => (await status.textContent()) ?? '', { timeout: FILE_STEP_MS }).toMatch(/Saved|error|lost|wrong|reset|released|not/i);
  const text = (await status.textContent()) ?? '';
  if (!/Saved/.test(text)) return { status: text };
  const d = await downloaded;
  const file = await d?.path();
  return { bytes: file ? readFileSync(file) : undefined, status: text };
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error('Chromium is not installed: install the Debian package chromium');
  smtp = await new SmtpCatcher().start();
  sb = sandbox({ SEALDROP_SFTP__ENABLED: 'false' }, smtp.port);
  for (const [email, role, pw] of [
    ['admin@example.org', 'admin', PW.admin],
    ['alice@example.org', 'member', PW.alice],
  ] as const) {
    const r = await runCli(sb, ['account', 'add', '--email', email, '--role', role, '--password-stdin'], pw);
    expect(r.code, r.stderr).toBe(0);
  }
  daemon = await startDaemonProcess(sb);
});

afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close().catch(() => undefined)));
  await daemon?.stop();
  await smtp?.stop();
  sb?.remove();
});

describe('the web UI', () => {
  it('walks the whole process in the browser; no request carries a SecuPass', { timeout: 120_000 + 4 * FILE_STEP_MS }, async () => {
    const original = randomBytes(MIB * 1024 * 1024);
    const fileName = `report <b>${XSS}.bin`;
    // The browser reads the file from disk (as a user's file chooser does), under the hostile name.
    const srcDir = path.join(sb.dir, 'upload');
    mkdirSync(srcDir);
    const srcFile = path.join(srcDir, fileName);
    writeFileSync(srcFile, original);

    // The member activates the SecuPass in the browser and sends a level-4 delivery.
    trace('The member activates the SecuPass in the browser and sends a');
    const aliceCtx = await context();
    const alice = await aliceCtx.newPage();
    await login(alice, 'alice@example.org', PW.alice);
    await setSecupass(alice, SP.alice);
    await alice.goto('/send');
    // Likewise the send form (its message would be in the address).
    expect(await (await alice.request.get(`${daemon.url}/send`)).text()).toContain('<button type="submit" id="send-button" disabled>');
    await alice.getByLabel('To').fill('new@example.org');
    await alice.getByLabel('Subject').fill(`Contract ${XSS} & <b>terms</b>`);
    await alice.getByLabel('Security level').selectOption('4');
    await alice.getByLabel('Message').fill(`Please sign. ${XSS}`);
    await alice.getByLabel('Files').setInputFiles(srcFile);
    await alice.getByRole('button', { name: 'Encrypt and send' }).click();
    await alice.waitForURL(/\/deliveries\/[0-9a-f-]{36}$/, { timeout: FILE_STEP_MS });
    const deliveryId = alice.url().split('/').pop() as string;
    // Markup in subject, file name and message is shown as text.
    trace('Markup in subject, file name and message is shown as text.');
    await expect.poll(() => alice.locator('h1').textContent()).toBe(`Contract ${XSS} & <b>terms</b>`);
    expect(await alice.locator('main img').count()).toBe(0);
    expect(await alice.locator('ul.files .name').first().textContent()).toBe(fileName);

    // The recipient opens the mailed link, registers, logs in, sees the notice, sets the SecuPass.
    trace('The recipient opens the mailed link, registers, logs in, see');
    const invitation = await smtp.waitFor('new@example.org', 'invitation');
    const link = linkIn(invitation, 'http://127.0.0.1:8080/register');
    const newCtx = await context();
    const newbie = await newCtx.newPage();
    await newbie.goto(`${link.pathname}${link.search}`);
    expect(newbie.url()).toBe(`${daemon.url}/register`); // the token left the address bar
    await newbie.getByLabel('New password').fill(PW.newbie);
    await newbie.getByLabel('Repeat the password').fill(PW.newbie);
    await newbie.getByRole('button', { name: 'Register' }).click();
    await newbie.waitForURL(/\/login\?registered=1$/);
    await login(newbie, 'new@example.org', PW.newbie);
    await expect.poll(() => newbie.locator('#secupass-notice').textContent()).toContain('You need to set up your SecuPass');
    await shotBoth(newbie, 'inbox-secupass-notice');
    // The SecuPass must differ from the login password (checked on the device).
    trace('The SecuPass must differ from the login password (checked on');
    await newbie.getByRole('link', { name: 'Set up SecuPass' }).click();
    // Until its script handles the form, the page cannot send it natively (a GET of the page
    // with the SecuPass in the address): the button comes disabled.
    const bare = await (await newbie.request.get(`${daemon.url}/secupass`)).text();
    expect(bare).toContain('<button type="submit" id="secupass-submit" disabled>');
    await newbie.getByLabel('SecuPass', { exact: true }).fill(PW.newbie);
    await newbie.getByLabel('Repeat the SecuPass').fill(PW.newbie);
    await newbie.getByRole('button', { name: 'Set up SecuPass' }).click();
    await expect.poll(() => newbie.locator('#e-secupass').textContent()).toContain('must differ from your login password');
    await setSecupass(newbie, SP.newbie1);
    const keyFp = async () => newbie.evaluate(async () => {
      const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
      const r = await fetch('/ui/api/secupass/key', { headers: { 'X-CSRF-Token': csrf } });
      return ((await r.json()) as { key: { fingerprint: string } }).key.fingerprint;
    });
    const fp1 = await keyFp();

    // The owner sees the notification, checks the fingerprint and releases.
    trace('The owner sees the notification, checks the fingerprint and ');
    await smtp.waitFor('alice@example.org', 'release_needed');
    await alice.goto('/outbox');
    await expect.poll(() => alice.locator('#notifications').textContent()).toContain('new@example.org activated the SecuPass — release needed');
    await alice.goto(`/deliveries/${deliveryId}`);
    const shownFp = ((await alice.locator('#release code.fp').textContent()) ?? '').replace(/\s/g, '').toLowerCase();
    expect(shownFp).toBe(fp1);
    expect(await alice.locator('#release .alert').count()).toBe(0);
    await shotBoth(alice, 'release');
    await alice.getByLabel('Your SecuPass').fill('not my secupass at all');
    await alice.getByRole('button', { name: 'Release' }).click();
    await expect.poll(() => alice.locator('#release-status').textContent()).toContain('The SecuPass is wrong');
    await alice.getByLabel('Your SecuPass').fill(SP.alice);
    await alice.getByRole('button', { name: 'Release' }).click();
    await expect.poll(() => alice.locator('table.list').textContent(), { timeout: 60_000 }).toContain('available');

    // The recipient downloads; the saved file equals the original; the message decrypts.
    trace('The recipient downloads; the saved file equals the original;');
    const first = await downloadFile(newbie, deliveryId, SP.newbie1, 'report');
    expect(first.status).toContain('Saved');
    expect(first.bytes && createHash('sha256').update(first.bytes).digest('hex')).toBe(createHash('sha256').update(original).digest('hex'));
    await newbie.getByLabel('SecuPass').fill(SP.newbie1);
    await newbie.getByRole('button', { name: 'Decrypt the message' }).click();
    await expect.poll(() => newbie.locator('#message-text').textContent()).toBe(`Please sign. ${XSS}`);
    expect(await newbie.locator('main img').count()).toBe(0);

    // An admin resets the recipient's SecuPass; the download is refused with a clear message.
    trace("An admin resets the recipient's SecuPass; the download is re");
    const adminCtx = await context();
    const admin = await adminCtx.newPage();
    await login(admin, 'admin@example.org', PW.admin);
    await admin.goto('/admin/accounts');
    await admin.locator('tr', { hasText: 'new@example.org' }).getByRole('link', { name: 'Reset SecuPass' }).click();
    await expect.poll(() => admin.locator('main').textContent()).toContain('permanently loses access');
    await shotBoth(admin, 'admin-reset');
    await admin.getByLabel('Type new@example.org to confirm').fill('new@example.org');
    await admin.getByRole('button', { name: 'Reset SecuPass for good' }).click();
    await admin.waitForURL(/done=reset/);
    await newbie.goto(`/deliveries/${deliveryId}`);
    await expect.poll(() => newbie.locator('main .alert').first().textContent()).toContain('Your SecuPass was reset');
    await shotBoth(newbie, 'delivery-access-lost');
    await setSecupass(newbie, SP.newbie2);
    const refused = await downloadFile(newbie, deliveryId, SP.newbie2, 'report');
    expect(refused.status).toBe('The sender has not released this delivery to you yet.');

    // The owner re-releases after the new SecuPass, seeing the key-changed warning.
    trace('The owner re-releases after the new SecuPass, seeing the key');
    await smtp.waitFor('alice@example.org', 'release_needed', 2);
    const fp2 = await keyFp();
    await alice.goto(`/deliveries/${deliveryId}`);
    await expect.poll(() => alice.locator('#release .alert').textContent()).toContain('differs from the one you last released to');
    expect(((await alice.locator('#release code.fp').textContent()) ?? '').replace(/\s/g, '').toLowerCase()).toBe(fp2);
    await shotBoth(alice, 'release-key-changed');
    await alice.getByLabel('Your SecuPass').fill(SP.alice);
    await alice.getByRole('button', { name: 'Release' }).click();
    await expect.poll(() => alice.locator('#release-status').textContent()).toContain('I checked the new key');
    await alice.getByLabel('I checked the new key and want to release to it.').check();
    await alice.getByLabel('Your SecuPass').fill(SP.alice);
    await alice.getByRole('button', { name: 'Release' }).click();
    await expect.poll(() => alice.locator('table.list').textContent(), { timeout: 60_000 }).toContain('available');
    const again = await downloadFile(newbie, deliveryId, SP.newbie2, 'report');
    expect(again.bytes?.equals(original)).toBe(true);

    // No request ever carried a SecuPass, in any encoding; no script ran from user content.
    trace('No request ever carried a SecuPass, in any encoding; no scri');
    const patterns = Object.entries(SP).flatMap(([name, secret]) => encodings(secret).map((e) => ({ name, ...e })));
    const hits: string[] = [];
    for (const r of requests) {
      const blob = Buffer.concat([Buffer.from(r.url), Buffer.from(JSON.stringify(r.headers)), r.body ?? Buffer.alloc(0)]);
      for (const p of patterns) if (blob.includes(p.bytes)) hits.push(`${r.url}: ${p.name} (${p.how})`);
    }
    expect(requests.length).toBeGreaterThan(40);
    expect(requests.some((r) => r.url.includes('/ui/api/secupass') && r.body && r.body.length > 200)).toBe(true);
    expect(hits).toEqual([]);
    expect(dialogs).toEqual([]);
    await Promise.all([aliceCtx.close(), newCtx.close(), adminCtx.close()]);
  });

  it('takes a screenshot of every page in both languages', async () => {
    // Pages behind mailed links: a password reset, a level-1 link sent from the browser.
    const setup = await context();
    const p = await setup.newPage();
    await p.goto('/password-forgot');
    await p.getByLabel('E-mail address').fill('alice@example.org');
    await p.getByRole('button', { name: 'Send the link' }).click();
    await expect.poll(() => p.locator('main').textContent()).toContain('a link is on its way');
    const resetLink = linkIn(await smtp.waitFor('alice@example.org', 'password_reset'), 'http://127.0.0.1:8080/password-reset');
    await p.goto(`${resetLink.pathname}${resetLink.search}`);
    expect(p.url()).toBe(`${daemon.url}/password-reset`);
    await shotBoth(p, 'password-reset');
    await login(p, 'alice@example.org', PW.alice);
    await p.goto('/send');
    await p.getByLabel('To').fill('partner@example.org');
    await p.getByLabel('Subject').fill('Price list');
    await p.getByLabel('Security level').selectOption('1');
    await p.getByLabel('Files').setInputFiles({ name: 'prices.csv', mimeType: 'text/csv', buffer: Buffer.from('item;price\nwidget;4.20\n') });
    await p.getByRole('button', { name: 'Encrypt and send' }).click();
    await p.waitForURL(/\/deliveries\/[0-9a-f-]{36}$/, { timeout: 60_000 });
    const link = linkIn(await smtp.waitFor('partner@example.org', 'delivery_link'), 'http://127.0.0.1:8080/link');
    await p.goto(`${link.pathname}${link.search}`);
    expect(await p.locator('main').textContent()).toContain('prices.csv');
    await shotBoth(p, 'link');
    await p.getByLabel('E-mail address').fill('partner@example.org');
    const saved = p.waitForEvent('download');
    await p.getByRole('button', { name: 'Download: prices.csv' }).click();
    expect(readFileSync(await (await saved).path()).toString()).toBe('item;price\nwidget;4.20\n');
    await p.goto('/no/such/page');
    await shotBoth(p, 'error');
    await setup.close();

    for (const lang of ['en', 'de'] as const) {
      const ctx = await context(lang === 'de' ? 'de-DE' : 'en-US');
      const page = await ctx.newPage();
      await page.goto('/login');
      expect(await page.locator('h1').textContent()).toBe(lang === 'de' ? 'Anmelden' : 'Log in');
      await shot(page, `${lang}-login`);
      await page.goto('/password-forgot');
      await shot(page, `${lang}-password-forgot`);
      await page.goto('/register');
      await shot(page, `${lang}-register`);
      await page.goto('/login');
      await page.locator('#f-email').fill('alice@example.org');
      await page.locator('#f-password').fill(PW.alice);
      await page.locator('#login-form button[type=submit]').click();
      await page.waitForURL(/\/inbox$/);
      await shot(page, `${lang}-inbox`);
      await page.goto('/outbox');
      await shot(page, `${lang}-outbox`);
      const first = page.locator('table.list a').first();
      await first.click();
      await shot(page, `${lang}-delivery-owner`);
      await page.goto('/send');
      await shot(page, `${lang}-send`);
      await page.goto('/secupass');
      await shot(page, `${lang}-secupass`);
      await ctx.close();
      const nctx = await context(lang === 'de' ? 'de-DE' : 'en-US');
      const n = await nctx.newPage();
      await n.goto('/login');
      await n.locator('#f-email').fill('new@example.org');
      await n.locator('#f-password').fill(PW.newbie);
      await n.locator('#login-form button[type=submit]').click();
      await n.waitForURL(/\/inbox$/);
      await n.locator('table.list a').first().click();
      await shot(n, `${lang}-delivery-recipient`);
      await nctx.close();
      const actx = await context(lang === 'de' ? 'de-DE' : 'en-US');
      const a = await actx.newPage();
      await a.goto('/login');
      await a.locator('#f-email').fill('admin@example.org');
      await a.locator('#f-password').fill(PW.admin);
      await a.locator('#login-form button[type=submit]').click();
      await a.waitForURL(/\/inbox$/);
      await a.goto('/admin/accounts');
      await shot(a, `${lang}-admin-accounts`);
      await a.goto('/admin/deliveries');
      await shot(a, `${lang}-admin-deliveries`);
      await a.goto('/admin/audit');
      await shot(a, `${lang}-admin-audit`);
      // Phone width.
      trace('Phone width.');
      await a.setViewportSize({ width: 390, height: 844 });
      await a.goto('/admin/accounts');
      await shot(a, `${lang}-phone-admin-accounts`);
      await actx.close();
    }
    expect(new Set(shown).size).toBe(2 * 21);
    expect(existsSync(path.join(SHOTS, 'de-delivery-recipient.png'))).toBe(true);
  });
  it('lets admins manage accounts and read the audit log, senders re-invite and withdraw, users reset a forgotten password; by keyboard too', async () => {
    // Keyboard only: skip link, then Tab through the login form, Enter submits; focus is visible.
    const adminCtx = await context();
    const admin = await adminCtx.newPage();
    await admin.goto('/login');
    await admin.keyboard.press('Tab');
    expect(await admin.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    await admin.keyboard.press('Enter');
    await admin.keyboard.press('Tab');
    expect(await admin.evaluate(() => document.activeElement?.id)).toBe('f-email');
    expect(await admin.evaluate(() => getComputedStyle(document.activeElement as Element).outlineStyle)).toBe('solid');
    await admin.keyboard.type('admin@example.org');
    await admin.keyboard.press('Tab');
    await admin.keyboard.type(PW.admin);
    await admin.keyboard.press('Enter');
    await admin.waitForURL(/\/inbox$/);

    // Invite: a bad address is reported next to its field; a good one is invited by mail.
    await admin.goto('/admin/accounts');
    await admin.getByLabel('E-mail address').fill('bob@@example.org');
    await admin.getByRole('button', { name: 'Invite', exact: true }).click();
    await expect.poll(() => admin.locator('#e-email').textContent()).toContain('This e-mail address is not valid.');
    expect(await admin.getByLabel('E-mail address').getAttribute('aria-invalid')).toBe('true');
    await admin.getByLabel('E-mail address').fill('bob@example.org');
    await admin.getByRole('button', { name: 'Invite', exact: true }).click();
    await admin.waitForURL(/done=invited/);
    await smtp.waitFor('bob@example.org', 'invitation');
    const bobRow = admin.locator('tr', { hasText: 'bob@example.org' });
    expect(await bobRow.textContent()).toContain('invited');
    await bobRow.getByRole('button', { name: 'Send the invitation again' }).click();
    await admin.waitForURL(/done=resend/);
    await smtp.waitFor('bob@example.org', 'invitation', 2);

    // A service account needs an owner (error on that field), then is created with it.
    await admin.getByLabel('E-mail address').fill('scanner@example.org');
    await admin.locator('#f-role').selectOption('service');
    await admin.getByRole('button', { name: 'Invite', exact: true }).click();
    await expect.poll(() => admin.locator('#e-owner').textContent()).toContain('Some input is missing or not valid.');
    await admin.getByLabel('Owner').fill('alice@example.org');
    await admin.getByRole('button', { name: 'Invite', exact: true }).click();
    await admin.waitForURL(/done=invited/);
    expect(await admin.locator('tr', { hasText: 'scanner@example.org' }).textContent()).toMatch(/service account[\s\S]*alice@example\.org/);

    // Role change, disable (the login is refused), enable again.
    const newRow = admin.locator('tr', { hasText: 'new@example.org' });
    await newRow.getByLabel('Role').selectOption('member');
    await newRow.getByRole('button', { name: 'Save' }).click();
    await admin.waitForURL(/done=role/);
    expect(await admin.locator('tr', { hasText: 'new@example.org' }).getByLabel('Role').inputValue()).toBe('member');
    await admin.locator('tr', { hasText: 'new@example.org' }).getByRole('button', { name: 'Disable' }).click();
    await admin.waitForURL(/done=disable/);
    const probeCtx = await context();
    const probe = await probeCtx.newPage();
    await probe.goto('/login');
    await probe.getByLabel('E-mail address').fill('new@example.org');
    await probe.getByLabel('Password').fill(PW.newbie);
    await probe.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => probe.locator('main .alert').textContent()).toMatch(/disabled|wrong/);
    expect(probe.url()).toContain('/login');
    await admin.locator('tr', { hasText: 'new@example.org' }).getByRole('button', { name: 'Enable' }).click();
    await admin.waitForURL(/done=enable/);
    await login(probe, 'new@example.org', PW.newbie);
    await probeCtx.close();

    // The audit log, filtered by action and by actor.
    await admin.goto('/admin/audit');
    await admin.getByLabel('Action').fill('account.role');
    await admin.getByRole('button', { name: 'Filter' }).click();
    await admin.waitForURL(/action=account\.role/);
    const actions = await admin.locator('table.list tbody tr td:nth-child(4)').allTextContents();
    expect(actions.length).toBeGreaterThan(0);
    expect(new Set(actions)).toEqual(new Set(['account.role']));
    await admin.goto('/admin/audit?actor=new%40example.org');
    const actors = await admin.locator('table.list tbody tr td:nth-child(3)').allTextContents();
    expect(actors.length).toBeGreaterThan(3);
    expect(actors.every((a) => a.startsWith('new@example.org'))).toBe(true);
    await adminCtx.close();

    // A sender re-sends an invitation and withdraws a delivery (after a confirmation step).
    const aliceCtx = await context();
    const alice = await aliceCtx.newPage();
    await login(alice, 'alice@example.org', PW.alice);
    await alice.goto('/send');
    await alice.getByLabel('To').fill('carol@example.org');
    await alice.getByLabel('Subject').fill('Draft minutes');
    await alice.getByLabel('Security level').selectOption('2');
    await alice.getByLabel('Message').fill('see attachment');
    await alice.getByLabel('Files').setInputFiles({ name: 'minutes.txt', mimeType: 'text/plain', buffer: Buffer.from('minutes of the meeting\n') });
    await alice.getByRole('button', { name: 'Encrypt and send' }).click();
    await alice.waitForURL(/\/deliveries\/[0-9a-f-]{36}$/, { timeout: 60_000 });
    await smtp.waitFor('carol@example.org', 'invitation');
    await alice.getByRole('button', { name: 'Send the invitation again' }).click();
    await alice.waitForURL(/resent=1$/);
    expect(await alice.locator('main .notice').first().textContent()).toBe('The invitation was sent again.');
    await smtp.waitFor('carol@example.org', 'invitation', 2);
    expect(await alice.getByRole('button', { name: 'Withdraw for good' }).isVisible()).toBe(false);
    await alice.locator('details.danger-zone summary').click();
    await alice.getByRole('button', { name: 'Withdraw for good' }).click();
    await alice.waitForURL(/revoked=1$/);
    expect(await alice.locator('dl.facts').textContent()).toContain('withdrawn');
    expect(await alice.locator('details.danger-zone').count()).toBe(0);
    await aliceCtx.close();

    // A forgotten login password: mailed link, new password (a mismatch is shown next to the
    // field), login with it; the SecuPass and the deliveries are kept.
    const forgotCtx = await context();
    const forgot = await forgotCtx.newPage();
    await forgot.goto('/login');
    await forgot.getByRole('link', { name: 'Forgot your password?' }).click();
    await forgot.getByLabel('E-mail address').fill('new@example.org');
    await forgot.getByRole('button', { name: 'Send the link' }).click();
    const resetLink = linkIn(await smtp.waitFor('new@example.org', 'password_reset'), 'http://127.0.0.1:8080/password-reset');
    await forgot.goto(`${resetLink.pathname}${resetLink.search}`);
    const newPassword = 'a brand new password 8642';
    await forgot.getByLabel('New password').fill(newPassword);
    await forgot.getByLabel('Repeat the password').fill(`${newPassword}!`);
    await forgot.getByRole('button', { name: 'Save the new password' }).click();
    await expect.poll(() => forgot.locator('#e-confirm').textContent()).toBe('The two passwords differ.');
    await forgot.getByLabel('New password').fill(newPassword);
    await forgot.getByLabel('Repeat the password').fill(newPassword);
    await forgot.getByRole('button', { name: 'Save the new password' }).click();
    await forgot.waitForURL(/\/login\?reset=1$/);
    expect(await forgot.locator('main').textContent()).toContain('Your password was changed.');
    await login(forgot, 'new@example.org', newPassword);
    expect(await forgot.locator('table.list').textContent()).toContain('Contract');
    await forgot.goto('/secupass');
    expect(await forgot.locator('main').textContent()).toContain('Your SecuPass is active.');
    await forgotCtx.close();
    expect(dialogs).toEqual([]);
  });
});
