/**
 * JSON endpoints for the UI's browser code (/ui/api): the same core calls as the public API,
 * but authenticated by the session cookie plus the X-CSRF-Token header (the public API takes
 * bearer tokens only). They carry what the page needs to encrypt, decrypt and release on the
 * device; no SecuPass ever reaches them.
 */
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import { fail } from '../../core/errors.ts';
import type { Principal } from '../../core/context.ts';
import { detachedBody } from '../http/body.ts';
import { sendDownload } from '../http/routes/deliveries.ts';
import { param, readJson } from '../http/request.ts';
import { requireCsrf, type UiContext, type UiState } from './context.ts';

/** The UI JSON routes. */
export function uiApiRoutes(ui: UiContext): Router {
  const { core, config } = ui;
  const router = new Router({ prefix: '/ui/api' });
  const csrf = requireCsrf(ui, (ctx) => ctx.get('x-csrf-token'));
  const limit = config.http.maxJsonBytes;

  router.use(async (ctx: Context, next: Next) => {
    const state = ctx.state as UiState;
    if (!state.principal) throw fail('SEALDROP_E_UNAUTHENTICATED', 'log in again');
    // Every call, reads included, carries the token: a cross-site page cannot read it.
    csrf(ctx);
    ctx.set('Cache-Control', 'no-store');
    await next();
  });
  const me = (ctx: Context) => (ctx.state as UiState).principal as Principal;

  router.post('/secupass', async (ctx) => {
    const body = await readJson(ctx, limit);
    // Only client-made keys: the browser never sends a SecuPass.
    if (body.secupass !== undefined) throw fail('SEALDROP_E_VALIDATION', 'the browser sends keys, never the SecuPass');
    ctx.status = 201;
    ctx.body = { key: await core.secupass.activate(me(ctx), { publicKey: body.publicKey, privateKey: body.privateKey }) };
  });

  router.get('/secupass/key', async (ctx) => {
    ctx.body = { key: await core.secupass.getKey(me(ctx)) };
  });

  router.post('/deliveries', async (ctx) => {
    const body = await readJson(ctx, limit);
    // A level-4 message is encrypted in the page and uploaded as the message item.
    if (body.level === 4 && body.message !== undefined) throw fail('SEALDROP_E_VALIDATION', 'a level-4 message is uploaded encrypted, not sent as text');
    const delivery = await core.deliveries.create(me(ctx), body);
    ctx.status = 201;
    ctx.body = { delivery, keys: delivery.level >= 3 ? await core.deliveries.encryptionKeys(me(ctx), delivery.id) : [] };
  });

  router.put('/deliveries/:id/files/:name', async (ctx) => {
    const clientEncrypted = /^application\/pgp-encrypted\b/i.test(ctx.get('content-type'));
    const plain = ctx.get('x-plaintext-size');
    const file = await core.deliveries.addFile(me(ctx), param(ctx, 'id'), param(ctx, 'name'), detachedBody(ctx.req), {
      ...(clientEncrypted ? { clientEncrypted: { plaintextSize: /^\d{1,16}$/.test(plain) ? Number(plain) : undefined } } : {}),
    });
    ctx.status = 201;
    ctx.body = { file };
  });

  router.put('/deliveries/:id/message', async (ctx) => {
    // The same rules as the API's route: level 4 only, within deliveries.maxMessageBytes.
    const declared = ctx.get('content-length');
    const plain = ctx.get('x-plaintext-size');
    await core.deliveries.addClientMessage(me(ctx), param(ctx, 'id'), detachedBody(ctx.req), {
      ...(/^\d{1,16}$/.test(declared) ? { declaredSize: Number(declared) } : {}),
      ...(/^\d{1,16}$/.test(plain) ? { plaintextSize: Number(plain) } : {}),
    });
    ctx.status = 204;
  });

  router.post('/deliveries/:id/send', async (ctx) => {
    ctx.body = { delivery: await core.deliveries.send(me(ctx), param(ctx, 'id')) };
  });

  router.get('/deliveries/:id/release-material', async (ctx) => {
    ctx.body = await core.deliveries.releaseMaterial(me(ctx), param(ctx, 'id'));
  });

  router.post('/deliveries/:id/wraps', async (ctx) => {
    const body = await readJson(ctx, limit);
    ctx.body = { delivery: await core.deliveries.addWraps(me(ctx), param(ctx, 'id'), body) };
  });

  router.get('/deliveries/:id/files/:fileId', async (ctx) => {
    sendDownload(ctx, await core.deliveries.download(me(ctx), param(ctx, 'id'), param(ctx, 'fileId')));
  });

  router.get('/deliveries/:id/message', async (ctx) => {
    const m = await core.deliveries.message(me(ctx), param(ctx, 'id'));
    if (m.encrypted) sendDownload(ctx, m.download);
    else ctx.body = { message: m.text };
  });

  return router;
}
