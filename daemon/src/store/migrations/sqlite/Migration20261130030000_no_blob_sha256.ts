import { Migration } from '@mikro-orm/migrations';

/**
 * A stored file no longer carries the SHA-256 of its ciphertext: the read-back checks the
 * file's own integrity (the OpenPGP MDC, or the chunk tags of levels 1/2) before the first byte.
 */
export class Migration20261130030000_no_blob_sha256 extends Migration {
  override async up(): Promise<void> {
    this.addSql('alter table `delivery_file` drop column `sha256`;');
  }
}
