/**
 * Typed domain events, emitted after the transaction that caused them committed. Side effects
 * that may lag (waking the mail worker, metrics, plugins) subscribe here; the outbox row itself
 * is written inside the transaction, so nothing depends on a listener to stay consistent.
 */
import { EventEmitter } from 'node:events';

/** Every event and its payload. */
export interface CoreEventMap {
  'outbox.enqueued': { count: number };
  'delivery.created': { deliveryId: string; level: number; via: string };
  'delivery.sent': { deliveryId: string; recipients: number };
  'delivery.released': { deliveryId: string; recipients: number };
  'delivery.revoked': { deliveryId: string };
  'delivery.expired': { deliveryId: string };
  'file.stored': { deliveryId: string; fileId: string; bytes: number; via: string };
  'file.downloaded': { deliveryId: string; fileId: string; via: string };
  /** An upload began (any protocol); exactly one `upload.finished` follows once it completed or was aborted. */
  'upload.started': { via: string };
  /** An upload ended: stored (`ok`), or aborted/failed with nothing of it left. */
  'upload.finished': { via: string; ok: boolean };
  'secupass.activated': { accountId: string };
  'secupass.reset': { accountId: string };
  'auth.failed': { reason: string; via: string };
}

/** The event bus. Listener errors are caught and reported to `onListenerError`, never to the emitter. */
export class CoreEvents {
  private readonly emitter = new EventEmitter();

  constructor(private readonly onListenerError: (event: string, err: unknown) => void = () => undefined) {
    this.emitter.setMaxListeners(50);
  }

  /** Subscribes to an event. */
  on<K extends keyof CoreEventMap>(event: K, listener: (payload: CoreEventMap[K]) => void): void {
    this.emitter.on(event, (payload: CoreEventMap[K]) => {
      try {
        listener(payload);
      } catch (err) {
        this.onListenerError(event, err);
      }
    });
  }

  /** Emits an event (call after commit). */
  emit<K extends keyof CoreEventMap>(event: K, payload: CoreEventMap[K]): void {
    this.emitter.emit(event, payload);
  }
}
