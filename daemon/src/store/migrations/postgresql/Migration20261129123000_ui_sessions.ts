import { Migration } from '@mikro-orm/migrations';

/** PostgreSQL twin: browser sessions beside API sessions. */
export class Migration20261129123000_ui_sessions extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "session" add column "kind" varchar(8) not null default 'api';`);
  }
}
