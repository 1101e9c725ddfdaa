import { Migration } from '@mikro-orm/migrations';

/** The virtual tree (SFTP, WebDAV): open deliveries per folder, temporary files, SSH keys. */
export class Migration20261129120000_tree extends Migration {
  override async up(): Promise<void> {
    this.addSql('alter table `delivery` add column `folder_key` text null;');
    this.addSql('alter table `delivery` add column `last_activity_at` datetime null;');
    this.addSql("create unique index `delivery_open_folder_unique` on `delivery` (`sender_id`, `folder_key`) where `state` = 'open' and `folder_key` is not null;");
    this.addSql('alter table `delivery_file` add column `temp` integer not null default 0;');
    this.addSql(
      'create table `ssh_key` (`id` text not null, `account_id` text not null, `fingerprint` text not null, `algorithm` text not null, `public_key` text not null, `comment` text null, `created_at` datetime not null, `last_used_at` datetime null, constraint `ssh_key_account_id_foreign` foreign key(`account_id`) references `account`(`id`) on delete cascade on update cascade, primary key (`id`));',
    );
    this.addSql('create index `ssh_key_account_id_index` on `ssh_key` (`account_id`);');
    this.addSql('create unique index `ssh_key_fingerprint_unique` on `ssh_key` (`fingerprint`);');
  }
}
