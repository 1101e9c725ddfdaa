import { Migration } from '@mikro-orm/migrations';

export class Migration20261129103534_initial extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create table \`account\` (\`id\` text not null, \`email\` text not null, \`role\` text check (\`role\` in ('admin', 'member', 'service', 'guest')) not null, \`state\` text check (\`state\` in ('invited', 'active', 'disabled')) not null, \`display_name\` text null, \`password_hash\` text null, \`owner_id\` text null, \`created_at\` datetime not null, \`registered_at\` datetime null, \`registered_from\` text null, \`password_changed_at\` datetime null, \`disabled_at\` datetime null, primary key (\`id\`));`);
    this.addSql(`create unique index \`account_email_unique\` on \`account\` (\`email\`);`);
    this.addSql(`create index \`account_owner_id_index\` on \`account\` (\`owner_id\`);`);

    this.addSql(`create table \`account_token\` (\`id\` text not null, \`account_id\` text not null, \`purpose\` text check (\`purpose\` in ('invitation', 'password_reset')) not null, \`token_hash\` text not null, \`created_at\` datetime not null, \`expires_at\` datetime not null, \`used_at\` datetime null, constraint \`account_token_account_id_foreign\` foreign key(\`account_id\`) references \`account\`(\`id\`) on delete cascade on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`account_token_account_id_index\` on \`account_token\` (\`account_id\`);`);
    this.addSql(`create unique index \`account_token_token_hash_unique\` on \`account_token\` (\`token_hash\`);`);

    this.addSql(`create table \`api_token\` (\`id\` text not null, \`account_id\` text not null, \`name\` text not null, \`token_hash\` text not null, \`scopes\` json not null, \`created_at\` datetime not null, \`expires_at\` datetime not null, \`last_used_at\` datetime null, \`revoked_at\` datetime null, constraint \`api_token_account_id_foreign\` foreign key(\`account_id\`) references \`account\`(\`id\`) on delete cascade on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`api_token_account_id_index\` on \`api_token\` (\`account_id\`);`);
    this.addSql(`create unique index \`api_token_token_hash_unique\` on \`api_token\` (\`token_hash\`);`);
    this.addSql(`create index \`api_token_expires_at_index\` on \`api_token\` (\`expires_at\`);`);

    this.addSql(`create table \`audit_event\` (\`seq\` bigint not null, \`at\` datetime not null, \`actor_id\` text null, \`actor\` text null, \`action\` text not null, \`target_type\` text null, \`target_id\` text null, \`data\` json not null, \`ip\` text null, \`prev_hash\` text not null, \`hash\` text not null, primary key (\`seq\`));`);
    this.addSql(`create index \`audit_event_action_index\` on \`audit_event\` (\`action\`);`);
    this.addSql(`create index \`audit_event_target_id_index\` on \`audit_event\` (\`target_id\`);`);

    this.addSql(`create table \`audit_head\` (\`id\` integer not null, \`seq\` bigint not null, \`hash\` text not null, primary key (\`id\`));`);

    this.addSql(`create table \`delivery\` (\`id\` text not null, \`sender_id\` text not null, \`owner_id\` text not null, \`subject\` text not null, \`level\` integer not null, \`state\` text check (\`state\` in ('open', 'sent', 'revoked', 'expired')) not null, \`message_cipher\` blob null, \`has_message\` integer not null, \`delivery_key\` blob null, \`drop_folder\` text null, \`origin\` text not null, \`created_at\` datetime not null, \`sent_at\` datetime null, \`expires_at\` datetime not null, \`closed_at\` datetime null, \`expires_in_days\` integer not null, constraint \`delivery_sender_id_foreign\` foreign key(\`sender_id\`) references \`account\`(\`id\`) on update cascade, constraint \`delivery_owner_id_foreign\` foreign key(\`owner_id\`) references \`account\`(\`id\`) on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`delivery_sender_id_index\` on \`delivery\` (\`sender_id\`);`);
    this.addSql(`create index \`delivery_owner_id_index\` on \`delivery\` (\`owner_id\`);`);
    this.addSql(`create index \`delivery_state_index\` on \`delivery\` (\`state\`);`);
    this.addSql(`create index \`delivery_expires_at_index\` on \`delivery\` (\`expires_at\`);`);

    this.addSql(`create table \`delivery_file\` (\`id\` text not null, \`delivery_id\` text not null, \`kind\` text not null, \`name\` text not null, \`size\` bigint not null, \`blob_key\` text null, \`blob_size\` bigint not null, \`sha256\` text not null, \`created_at\` datetime not null, constraint \`delivery_file_delivery_id_foreign\` foreign key(\`delivery_id\`) references \`delivery\`(\`id\`) on delete cascade on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`delivery_file_delivery_id_index\` on \`delivery_file\` (\`delivery_id\`);`);
    this.addSql(`create unique index \`delivery_file_delivery_id_kind_name_unique\` on \`delivery_file\` (\`delivery_id\`, \`kind\`, \`name\`);`);

    this.addSql(`create table \`delivery_recipient\` (\`id\` text not null, \`delivery_id\` text not null, \`email\` text not null, \`account_id\` text null, \`state\` text check (\`state\` in ('pending', 'awaiting_registration', 'awaiting_secupass', 'awaiting_release', 'available', 'downloaded', 'access_lost', 'unreleasable', 'expired', 'revoked')) not null, \`updated_at\` datetime not null, \`released_at\` datetime null, \`released_key_id\` text null, \`released_fingerprint\` text null, \`downloaded_at\` datetime null, \`link_token_hash\` text null, constraint \`delivery_recipient_delivery_id_foreign\` foreign key(\`delivery_id\`) references \`delivery\`(\`id\`) on delete cascade on update cascade, constraint \`delivery_recipient_account_id_foreign\` foreign key(\`account_id\`) references \`account\`(\`id\`) on delete set null on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`delivery_recipient_delivery_id_index\` on \`delivery_recipient\` (\`delivery_id\`);`);
    this.addSql(`create index \`delivery_recipient_email_index\` on \`delivery_recipient\` (\`email\`);`);
    this.addSql(`create index \`delivery_recipient_account_id_index\` on \`delivery_recipient\` (\`account_id\`);`);
    this.addSql(`create index \`delivery_recipient_state_index\` on \`delivery_recipient\` (\`state\`);`);
    this.addSql(`create unique index \`delivery_recipient_link_token_hash_unique\` on \`delivery_recipient\` (\`link_token_hash\`);`);
    this.addSql(`create unique index \`delivery_recipient_delivery_id_email_unique\` on \`delivery_recipient\` (\`delivery_id\`, \`email\`);`);

    this.addSql(`create table \`notification\` (\`id\` text not null, \`account_id\` text not null, \`kind\` text not null, \`delivery_id\` text null, \`data\` json not null, \`created_at\` datetime not null, \`read_at\` datetime null, constraint \`notification_account_id_foreign\` foreign key(\`account_id\`) references \`account\`(\`id\`) on delete cascade on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`notification_account_id_index\` on \`notification\` (\`account_id\`);`);

    this.addSql(`create table \`outbox_message\` (\`id\` text not null, \`template\` text not null, \`to\` text not null, \`payload\` blob null, \`state\` text check (\`state\` in ('pending', 'sent', 'failed')) not null, \`attempts\` integer not null, \`next_attempt_at\` datetime not null, \`claimed_by\` text null, \`claimed_until\` datetime null, \`last_error\` text null, \`created_at\` datetime not null, \`sent_at\` datetime null, primary key (\`id\`));`);
    this.addSql(`create index \`outbox_message_state_index\` on \`outbox_message\` (\`state\`);`);
    this.addSql(`create index \`outbox_message_next_attempt_at_index\` on \`outbox_message\` (\`next_attempt_at\`);`);

    this.addSql(`create table \`rate_counter\` (\`key\` text not null, \`window_start\` bigint not null, \`count\` integer not null, primary key (\`key\`));`);

    this.addSql(`create table \`secupass_key\` (\`id\` text not null, \`account_id\` text not null, \`fingerprint\` text not null, \`encryption_key_id\` text not null, \`public_key\` text not null, \`private_key\` text null, \`origin\` text not null, \`created_at\` datetime not null, \`created_from\` text null, \`destroyed_at\` datetime null, constraint \`secupass_key_account_id_foreign\` foreign key(\`account_id\`) references \`account\`(\`id\`) on delete cascade on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`secupass_key_account_id_index\` on \`secupass_key\` (\`account_id\`);`);
    this.addSql(`create index \`secupass_key_fingerprint_index\` on \`secupass_key\` (\`fingerprint\`);`);

    this.addSql(`create table \`key_wrap\` (\`id\` text not null, \`file_id\` text not null, \`key_id\` text not null, \`pkesk\` blob not null, \`created_at\` datetime not null, constraint \`key_wrap_file_id_foreign\` foreign key(\`file_id\`) references \`delivery_file\`(\`id\`) on delete cascade on update cascade, constraint \`key_wrap_key_id_foreign\` foreign key(\`key_id\`) references \`secupass_key\`(\`id\`) on delete cascade on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`key_wrap_file_id_index\` on \`key_wrap\` (\`file_id\`);`);
    this.addSql(`create index \`key_wrap_key_id_index\` on \`key_wrap\` (\`key_id\`);`);
    this.addSql(`create unique index \`key_wrap_file_id_key_id_unique\` on \`key_wrap\` (\`file_id\`, \`key_id\`);`);

    this.addSql(`create table \`session\` (\`id\` text not null, \`account_id\` text not null, \`token_hash\` text not null, \`created_at\` datetime not null, \`expires_at\` datetime not null, \`last_seen_at\` datetime not null, \`ip\` text null, constraint \`session_account_id_foreign\` foreign key(\`account_id\`) references \`account\`(\`id\`) on delete cascade on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`session_account_id_index\` on \`session\` (\`account_id\`);`);
    this.addSql(`create unique index \`session_token_hash_unique\` on \`session\` (\`token_hash\`);`);
    this.addSql(`create index \`session_expires_at_index\` on \`session\` (\`expires_at\`);`);
  }

}
