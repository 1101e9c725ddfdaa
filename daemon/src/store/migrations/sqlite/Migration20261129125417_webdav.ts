import { Migration } from '@mikro-orm/migrations';

/** WebDAV: locks and dead properties stored per account and path; read-back keys of unsent files. */
export class Migration20261129125417_webdav extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table \`dav_lock\` (\`id\` text not null, \`account_id\` text not null, \`path\` text not null, \`token\` text not null, \`scope\` text not null, \`depth\` integer not null, \`owner\` text null, \`timeout_seconds\` integer not null, \`created_at\` datetime not null, \`expires_at\` datetime not null, constraint \`dav_lock_account_id_foreign\` foreign key(\`account_id\`) references \`account\`(\`id\`) on delete cascade on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`dav_lock_account_id_index\` on \`dav_lock\` (\`account_id\`);`);
    this.addSql(`create unique index \`dav_lock_token_unique\` on \`dav_lock\` (\`token\`);`);
    this.addSql(`create index \`dav_lock_expires_at_index\` on \`dav_lock\` (\`expires_at\`);`);
    this.addSql(`create index \`dav_lock_account_id_path_index\` on \`dav_lock\` (\`account_id\`, \`path\`);`);
    this.addSql(`create table \`dav_property\` (\`id\` text not null, \`account_id\` text not null, \`path\` text not null, \`name\` text not null, \`value\` text not null, \`updated_at\` datetime not null, constraint \`dav_property_account_id_foreign\` foreign key(\`account_id\`) references \`account\`(\`id\`) on delete cascade on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`dav_property_account_id_index\` on \`dav_property\` (\`account_id\`);`);
    this.addSql(`create unique index \`dav_property_account_id_path_name_unique\` on \`dav_property\` (\`account_id\`, \`path\`, \`name\`);`);
    this.addSql('alter table `delivery_file` add column `readback_key` blob null;');
    this.addSql('alter table `delivery_file` add column `readback_until` datetime null;');
  }
}
