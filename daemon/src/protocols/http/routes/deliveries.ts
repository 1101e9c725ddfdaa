/** Routes: deliveries — create, upload, send, list, read, release (server- and client-side), download, revoke. */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Download } from '../../../core/deliveries.ts';
import { fail } from '../../../core/errors.ts';
import type { ApiContext } from '../api.ts';
import { detachedBody } from '../body.ts';
import { contentDisposition, param, principalOf, readJson } from '../request.ts';

/** Streams a core download to the client. */
export function sendDownload(ctx: Context, dl: Download): void {
  ctx.status = 200;
  ctx.set('Content-Type', dl.contentType);
  ctx.set('Content-Disposition', contentDisposition(dl.fileName));
  ctx.set('Cache-Control', 'no-store');
  if (dl.size !== undefined) ctx.length = dl.size;
  dl.stream.on('error', (err) => ctx.app.emit('download-error', err, ctx));
  ctx.body = dl.stream;
}

/** Delivery routes (authenticated). */
export function deliveryRoutes(router: Router, { core, config }: ApiContext): void {
  router.post('/deliveries', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    const delivery = await core.deliveries.create(principalOf(ctx), body);
    ctx.status = 201;
    ctx.body = { id: delivery.id, delivery };
  });

  router.get('/deliveries', async (ctx) => {
    ctx.body = { deliveries: await core.deliveries.list(principalOf(ctx), { box: ctx.query.box, state: ctx.query.state, limit: ctx.query.limit }) };
  });

  router.get('/deliveries/:id', async (ctx) => {
    ctx.body = { delivery: await core.deliveries.get(principalOf(ctx), param(ctx, 'id')) };
  });

  router.get('/deliveries/:id/encryption-keys', async (ctx) => {
    ctx.body = { keys: await core.deliveries.encryptionKeys(principalOf(ctx), param(ctx, 'id')) };
  });

  router.put('/deliveries/:id/files/:name', async (ctx) => {
    const declared = ctx.get('content-length');
    // application/pgp-encrypted: a whole OpenPGP message encrypted on the client (PKESKs for
    // the owner and active recipients + SEIPDv1), stored as is.
    const clientEncrypted = /^application\/pgp-encrypted\b/i.test(ctx.get('content-type'));
    const plainHeader = ctx.get('x-plaintext-size');
    const file = await core.deliveries.addFile(principalOf(ctx), param(ctx, 'id'), param(ctx, 'name'), detachedBody(ctx.req), {
      mdcInWorker: false,
      ...(declared && /^\d+$/.test(declared) ? { declaredSize: Number(declared) } : {}),
      ...(clientEncrypted ? { clientEncrypted: { plaintextSize: /^\d{1,16}$/.test(plainHeader) ? Number(plainHeader) : undefined } } : {}),
    });
    ctx.status = 201;
    ctx.body = { file };
  });

  router.put('/deliveries/:id/message', async (ctx) => {
    if (!/^application\/pgp-encrypted\b/i.test(ctx.get('content-type'))) {
      throw fail('SEALDROP_E_VALIDATION', 'send the level-4 message as an OpenPGP message (Content-Type: application/pgp-encrypted)');
    }
    const declared = ctx.get('content-length');
    const plainHeader = ctx.get('x-plaintext-size');
    await core.deliveries.addClientMessage(principalOf(ctx), param(ctx, 'id'), detachedBody(ctx.req), {
      ...(declared && /^\d+$/.test(declared) ? { declaredSize: Number(declared) } : {}),
      ...(/^\d{1,16}$/.test(plainHeader) ? { plaintextSize: Number(plainHeader) } : {}),
    });
    ctx.body = { delivery: await core.deliveries.get(principalOf(ctx), param(ctx, 'id')) };
  });

  router.delete('/deliveries/:id/files/:fileId', async (ctx) => {
    await core.deliveries.removeFile(principalOf(ctx), param(ctx, 'id'), param(ctx, 'fileId'));
    ctx.status = 204;
  });

  router.post('/deliveries/:id/send', async (ctx) => {
    ctx.body = { delivery: await core.deliveries.send(principalOf(ctx), param(ctx, 'id')) };
  });

  router.post('/deliveries/:id/revoke', async (ctx) => {
    ctx.body = { delivery: await core.deliveries.revoke(principalOf(ctx), param(ctx, 'id')) };
  });

  router.post('/deliveries/:id/release', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    ctx.body = { delivery: await core.deliveries.release(principalOf(ctx), param(ctx, 'id'), body.secupass) };
  });

  router.get('/deliveries/:id/release-material', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await core.deliveries.releaseMaterial(principalOf(ctx), param(ctx, 'id'));
  });

  router.post('/deliveries/:id/wraps', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    ctx.body = { delivery: await core.deliveries.addWraps(principalOf(ctx), param(ctx, 'id'), body) };
  });

  router.get('/deliveries/:id/files/:fileId', async (ctx) => {
    sendDownload(ctx, await core.deliveries.download(principalOf(ctx), param(ctx, 'id'), param(ctx, 'fileId')));
  });

  router.get('/deliveries/:id/message', async (ctx) => {
    const message = await core.deliveries.message(principalOf(ctx), param(ctx, 'id'));
    if (message.encrypted) {
      sendDownload(ctx, message.download);
    } else {
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { message: message.text };
    }
  });
}
