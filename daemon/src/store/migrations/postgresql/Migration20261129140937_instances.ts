import { Migration } from '@mikro-orm/migrations';

/**
 * PostgreSQL twin: several instances: each daemon's heartbeat, the SFTP sessions open on it,
 * and the folders its sessions touched or upload into.
 */
export class Migration20261129140937_instances extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "daemon_instance" ("id" varchar(100) not null, "started_at" timestamptz not null, "heartbeat_at" timestamptz not null, constraint "daemon_instance_pkey" primary key ("id"));`);
    this.addSql(`create index "daemon_instance_heartbeat_at_index" on "daemon_instance" ("heartbeat_at");`);
    this.addSql(`create table "folder_activity" ("id" uuid not null, "account_id" uuid not null, "folder_key" varchar(700) not null, "kind" text check ("kind" in ('touched', 'transfer')) not null, "instance_id" varchar(100) not null, "at" timestamptz not null, constraint "folder_activity_pkey" primary key ("id"));`);
    this.addSql(`create index "folder_activity_instance_id_index" on "folder_activity" ("instance_id");`);
    this.addSql(`create index "folder_activity_account_id_folder_key_index" on "folder_activity" ("account_id", "folder_key");`);
    this.addSql(`create table "protocol_session" ("id" varchar(64) not null, "account_id" uuid not null, "instance_id" varchar(100) not null, "opened_at" timestamptz not null, constraint "protocol_session_pkey" primary key ("id"));`);
    this.addSql(`create index "protocol_session_account_id_index" on "protocol_session" ("account_id");`);
    this.addSql(`create index "protocol_session_instance_id_index" on "protocol_session" ("instance_id");`);
    this.addSql(`alter table "folder_activity" add constraint "folder_activity_account_id_foreign" foreign key ("account_id") references "account" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "folder_activity" add constraint "folder_activity_instance_id_foreign" foreign key ("instance_id") references "daemon_instance" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "protocol_session" add constraint "protocol_session_account_id_foreign" foreign key ("account_id") references "account" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "protocol_session" add constraint "protocol_session_instance_id_foreign" foreign key ("instance_id") references "daemon_instance" ("id") on update cascade on delete cascade;`);
  }
}
