import { Migration } from '@mikro-orm/migrations';

/** Browser sessions beside API sessions. */
export class Migration20261129123000_ui_sessions extends Migration {
  override async up(): Promise<void> {
    this.addSql("alter table `session` add column `kind` text not null default 'api';");
  }
}
