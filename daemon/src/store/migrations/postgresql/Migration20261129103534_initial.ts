import { Migration } from '@mikro-orm/migrations';

/** PostgreSQL twin of the SQLite migration of the same name: the first schema. */
export class Migration20261129103534_initial extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "account" ("id" uuid not null, "email" varchar(320) not null, "role" text check ("role" in ('admin', 'member', 'service', 'guest')) not null, "state" text check ("state" in ('invited', 'active', 'disabled')) not null, "display_name" varchar(200) null, "password_hash" varchar(255) null, "owner_id" uuid null, "created_at" timestamptz not null, "registered_at" timestamptz null, "registered_from" varchar(100) null, "password_changed_at" timestamptz null, "disabled_at" timestamptz null, constraint "account_pkey" primary key ("id"));`);
    this.addSql(`alter table "account" add constraint "account_email_unique" unique ("email");`);
    this.addSql(`create index "account_owner_id_index" on "account" ("owner_id");`);

    this.addSql(`create table "account_token" ("id" uuid not null, "account_id" uuid not null, "purpose" text check ("purpose" in ('invitation', 'password_reset')) not null, "token_hash" varchar(64) not null, "created_at" timestamptz not null, "expires_at" timestamptz not null, "used_at" timestamptz null, constraint "account_token_pkey" primary key ("id"));`);
    this.addSql(`create index "account_token_account_id_index" on "account_token" ("account_id");`);
    this.addSql(`alter table "account_token" add constraint "account_token_token_hash_unique" unique ("token_hash");`);

    this.addSql(`create table "api_token" ("id" uuid not null, "account_id" uuid not null, "name" varchar(100) not null, "token_hash" varchar(64) not null, "scopes" jsonb not null, "created_at" timestamptz not null, "expires_at" timestamptz not null, "last_used_at" timestamptz null, "revoked_at" timestamptz null, constraint "api_token_pkey" primary key ("id"));`);
    this.addSql(`create index "api_token_account_id_index" on "api_token" ("account_id");`);
    this.addSql(`alter table "api_token" add constraint "api_token_token_hash_unique" unique ("token_hash");`);
    this.addSql(`create index "api_token_expires_at_index" on "api_token" ("expires_at");`);

    this.addSql(`create table "audit_event" ("seq" bigint not null, "at" timestamptz not null, "actor_id" uuid null, "actor" varchar(320) null, "action" varchar(64) not null, "target_type" varchar(32) null, "target_id" varchar(64) null, "data" jsonb not null, "ip" varchar(100) null, "prev_hash" varchar(64) not null, "hash" varchar(64) not null, constraint "audit_event_pkey" primary key ("seq"));`);
    this.addSql(`create index "audit_event_action_index" on "audit_event" ("action");`);
    this.addSql(`create index "audit_event_target_id_index" on "audit_event" ("target_id");`);

    this.addSql(`create table "audit_head" ("id" int not null, "seq" bigint not null, "hash" varchar(64) not null, constraint "audit_head_pkey" primary key ("id"));`);

    this.addSql(`create table "delivery" ("id" uuid not null, "sender_id" uuid not null, "owner_id" uuid not null, "subject" varchar(1000) not null, "level" int not null, "state" text check ("state" in ('open', 'sent', 'revoked', 'expired')) not null, "message_cipher" bytea null, "has_message" boolean not null, "delivery_key" bytea null, "drop_folder" varchar(64) null, "origin" varchar(16) not null, "created_at" timestamptz not null, "sent_at" timestamptz null, "expires_at" timestamptz not null, "closed_at" timestamptz null, "expires_in_days" int not null, constraint "delivery_pkey" primary key ("id"));`);
    this.addSql(`create index "delivery_sender_id_index" on "delivery" ("sender_id");`);
    this.addSql(`create index "delivery_owner_id_index" on "delivery" ("owner_id");`);
    this.addSql(`create index "delivery_state_index" on "delivery" ("state");`);
    this.addSql(`create index "delivery_expires_at_index" on "delivery" ("expires_at");`);

    this.addSql(`create table "delivery_file" ("id" uuid not null, "delivery_id" uuid not null, "kind" varchar(16) not null, "name" varchar(1024) not null, "size" bigint not null, "blob_key" varchar(128) null, "blob_size" bigint not null, "sha256" varchar(64) not null, "created_at" timestamptz not null, constraint "delivery_file_pkey" primary key ("id"));`);
    this.addSql(`create index "delivery_file_delivery_id_index" on "delivery_file" ("delivery_id");`);
    this.addSql(`alter table "delivery_file" add constraint "delivery_file_delivery_id_kind_name_unique" unique ("delivery_id", "kind", "name");`);

    this.addSql(`create table "delivery_recipient" ("id" uuid not null, "delivery_id" uuid not null, "email" varchar(320) not null, "account_id" uuid null, "state" text check ("state" in ('pending', 'awaiting_registration', 'awaiting_secupass', 'awaiting_release', 'available', 'downloaded', 'access_lost', 'unreleasable', 'expired', 'revoked')) not null, "updated_at" timestamptz not null, "released_at" timestamptz null, "released_key_id" varchar(36) null, "released_fingerprint" varchar(64) null, "downloaded_at" timestamptz null, "link_token_hash" varchar(64) null, constraint "delivery_recipient_pkey" primary key ("id"));`);
    this.addSql(`create index "delivery_recipient_delivery_id_index" on "delivery_recipient" ("delivery_id");`);
    this.addSql(`create index "delivery_recipient_email_index" on "delivery_recipient" ("email");`);
    this.addSql(`create index "delivery_recipient_account_id_index" on "delivery_recipient" ("account_id");`);
    this.addSql(`create index "delivery_recipient_state_index" on "delivery_recipient" ("state");`);
    this.addSql(`alter table "delivery_recipient" add constraint "delivery_recipient_link_token_hash_unique" unique ("link_token_hash");`);
    this.addSql(`alter table "delivery_recipient" add constraint "delivery_recipient_delivery_id_email_unique" unique ("delivery_id", "email");`);

    this.addSql(`create table "notification" ("id" uuid not null, "account_id" uuid not null, "kind" varchar(64) not null, "delivery_id" uuid null, "data" jsonb not null, "created_at" timestamptz not null, "read_at" timestamptz null, constraint "notification_pkey" primary key ("id"));`);
    this.addSql(`create index "notification_account_id_index" on "notification" ("account_id");`);

    this.addSql(`create table "outbox_message" ("id" uuid not null, "template" varchar(64) not null, "to" varchar(320) not null, "payload" bytea null, "state" text check ("state" in ('pending', 'sent', 'failed')) not null, "attempts" int not null, "next_attempt_at" timestamptz not null, "claimed_by" varchar(64) null, "claimed_until" timestamptz null, "last_error" varchar(1000) null, "created_at" timestamptz not null, "sent_at" timestamptz null, constraint "outbox_message_pkey" primary key ("id"));`);
    this.addSql(`create index "outbox_message_state_index" on "outbox_message" ("state");`);
    this.addSql(`create index "outbox_message_next_attempt_at_index" on "outbox_message" ("next_attempt_at");`);

    this.addSql(`create table "rate_counter" ("key" varchar(400) not null, "window_start" bigint not null, "count" int not null, constraint "rate_counter_pkey" primary key ("key"));`);

    this.addSql(`create table "secupass_key" ("id" uuid not null, "account_id" uuid not null, "fingerprint" varchar(64) not null, "encryption_key_id" varchar(16) not null, "public_key" text not null, "private_key" text null, "origin" varchar(16) not null, "created_at" timestamptz not null, "created_from" varchar(100) null, "destroyed_at" timestamptz null, constraint "secupass_key_pkey" primary key ("id"));`);
    this.addSql(`create index "secupass_key_account_id_index" on "secupass_key" ("account_id");`);
    this.addSql(`create index "secupass_key_fingerprint_index" on "secupass_key" ("fingerprint");`);

    this.addSql(`create table "key_wrap" ("id" uuid not null, "file_id" uuid not null, "key_id" uuid not null, "pkesk" bytea not null, "created_at" timestamptz not null, constraint "key_wrap_pkey" primary key ("id"));`);
    this.addSql(`create index "key_wrap_file_id_index" on "key_wrap" ("file_id");`);
    this.addSql(`create index "key_wrap_key_id_index" on "key_wrap" ("key_id");`);
    this.addSql(`alter table "key_wrap" add constraint "key_wrap_file_id_key_id_unique" unique ("file_id", "key_id");`);

    this.addSql(`create table "session" ("id" uuid not null, "account_id" uuid not null, "token_hash" varchar(64) not null, "created_at" timestamptz not null, "expires_at" timestamptz not null, "last_seen_at" timestamptz not null, "ip" varchar(100) null, constraint "session_pkey" primary key ("id"));`);
    this.addSql(`create index "session_account_id_index" on "session" ("account_id");`);
    this.addSql(`alter table "session" add constraint "session_token_hash_unique" unique ("token_hash");`);
    this.addSql(`create index "session_expires_at_index" on "session" ("expires_at");`);

    this.addSql(`alter table "account_token" add constraint "account_token_account_id_foreign" foreign key ("account_id") references "account" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "api_token" add constraint "api_token_account_id_foreign" foreign key ("account_id") references "account" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "delivery" add constraint "delivery_sender_id_foreign" foreign key ("sender_id") references "account" ("id") on update cascade;`);
    this.addSql(`alter table "delivery" add constraint "delivery_owner_id_foreign" foreign key ("owner_id") references "account" ("id") on update cascade;`);
    this.addSql(`alter table "delivery_file" add constraint "delivery_file_delivery_id_foreign" foreign key ("delivery_id") references "delivery" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "delivery_recipient" add constraint "delivery_recipient_delivery_id_foreign" foreign key ("delivery_id") references "delivery" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "delivery_recipient" add constraint "delivery_recipient_account_id_foreign" foreign key ("account_id") references "account" ("id") on update cascade on delete set null;`);
    this.addSql(`alter table "notification" add constraint "notification_account_id_foreign" foreign key ("account_id") references "account" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "secupass_key" add constraint "secupass_key_account_id_foreign" foreign key ("account_id") references "account" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "key_wrap" add constraint "key_wrap_file_id_foreign" foreign key ("file_id") references "delivery_file" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "key_wrap" add constraint "key_wrap_key_id_foreign" foreign key ("key_id") references "secupass_key" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "session" add constraint "session_account_id_foreign" foreign key ("account_id") references "account" ("id") on update cascade on delete cascade;`);
  }
}
