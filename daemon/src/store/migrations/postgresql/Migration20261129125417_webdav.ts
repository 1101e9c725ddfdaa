import { Migration } from '@mikro-orm/migrations';

/** PostgreSQL twin: WebDAV locks and dead properties per account and path; read-back keys of unsent files. */
export class Migration20261129125417_webdav extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "dav_lock" ("id" uuid not null, "account_id" uuid not null, "path" varchar(2048) not null, "token" varchar(64) not null, "scope" varchar(16) not null, "depth" int not null, "owner" text null, "timeout_seconds" int not null, "created_at" timestamptz not null, "expires_at" timestamptz not null, constraint "dav_lock_pkey" primary key ("id"));`);
    this.addSql(`create index "dav_lock_account_id_index" on "dav_lock" ("account_id");`);
    this.addSql(`alter table "dav_lock" add constraint "dav_lock_token_unique" unique ("token");`);
    this.addSql(`create index "dav_lock_expires_at_index" on "dav_lock" ("expires_at");`);
    this.addSql(`create index "dav_lock_account_id_path_index" on "dav_lock" ("account_id", "path");`);
    // No separate account_id index: the unique (account_id, path, name) index leads with it.
    this.addSql(`create table "dav_property" ("id" uuid not null, "account_id" uuid not null, "path" varchar(2048) not null, "name" varchar(1024) not null, "value" text not null, "updated_at" timestamptz not null, constraint "dav_property_pkey" primary key ("id"));`);
    this.addSql(`alter table "dav_property" add constraint "dav_property_account_id_path_name_unique" unique ("account_id", "path", "name");`);
    this.addSql(`alter table "dav_lock" add constraint "dav_lock_account_id_foreign" foreign key ("account_id") references "account" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "dav_property" add constraint "dav_property_account_id_foreign" foreign key ("account_id") references "account" ("id") on update cascade on delete cascade;`);
    this.addSql('alter table "delivery_file" add column "readback_key" bytea null, add column "readback_until" timestamptz null;');
  }
}
