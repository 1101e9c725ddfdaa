/**
 * The core: every business rule of sealdrop behind one object. Front-ends (HTTP, SFTP,
 * WebDAV, UI, CLI) authenticate, then call these services with a Principal and plain streams.
 */
import { AccountService } from './accounts.ts';
import { queryAudit, type AuditFilter } from './audit.ts';
import type { CoreDeps } from './context.ts';
import { DavService } from './dav.ts';
import { DeliveryService } from './deliveries.ts';
import { SecuPassService } from './secupass.ts';
import { SshKeyService } from './ssh-keys.ts';
import { TreeService } from './tree.ts';

/** The wired core services. */
export class Core {
  readonly accounts: AccountService;
  readonly secupass: SecuPassService;
  readonly deliveries: DeliveryService;
  readonly sshKeys: SshKeyService;
  readonly tree: TreeService;
  readonly dav: DavService;

  constructor(readonly deps: CoreDeps) {
    this.deliveries = new DeliveryService(deps);
    this.accounts = new AccountService(deps, this.deliveries);
    this.secupass = new SecuPassService(deps, this.deliveries);
    this.deliveries.attach(this.accounts, this.secupass);
    this.sshKeys = new SshKeyService(deps);
    this.tree = new TreeService(deps, this.deliveries, (accountId, via) => this.accounts.principalFor(accountId, 'system', via));
    this.dav = new DavService(deps);
  }

  /** Audit events matching a filter (callers check the admin scope). */
  audit(filter: AuditFilter) {
    return queryAudit(this.deps.orm.em.fork(), filter);
  }
}

export type { CoreDeps, Principal, Scope, Via } from './context.ts';
export { SealdropError, ERROR_CODES, type ErrorCode } from './errors.ts';
