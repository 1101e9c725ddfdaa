import { Migration } from '@mikro-orm/migrations';

/** PostgreSQL twin: the virtual tree (SFTP, WebDAV): open deliveries per folder, temporary files, SSH keys. */
export class Migration20261129120000_tree extends Migration {
  override async up(): Promise<void> {
    this.addSql('alter table "delivery" add column "folder_key" varchar(700) null, add column "last_activity_at" timestamptz null;');
    this.addSql(`create unique index "delivery_open_folder_unique" on "delivery" ("sender_id", "folder_key") where "state" = 'open' and "folder_key" is not null;`);
    this.addSql('alter table "delivery_file" add column "temp" boolean not null default false;');
    this.addSql(
      'create table "ssh_key" ("id" uuid not null, "account_id" uuid not null, "fingerprint" varchar(80) not null, "algorithm" varchar(40) not null, "public_key" text not null, "comment" varchar(200) null, "created_at" timestamptz not null, "last_used_at" timestamptz null, constraint "ssh_key_pkey" primary key ("id"));',
    );
    this.addSql('create index "ssh_key_account_id_index" on "ssh_key" ("account_id");');
    this.addSql('alter table "ssh_key" add constraint "ssh_key_fingerprint_unique" unique ("fingerprint");');
    this.addSql('alter table "ssh_key" add constraint "ssh_key_account_id_foreign" foreign key ("account_id") references "account" ("id") on update cascade on delete cascade;');
  }
}
