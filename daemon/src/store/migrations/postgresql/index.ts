/**
 * The PostgreSQL migrations, in order: one twin per SQLite migration (same name and timestamp),
 * so both dialects reach the schema the entities declare. New ones come from
 * `npm run migration:create -- <name>` (it writes both).
 */
import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261129103534_initial } from './Migration20261129103534_initial.ts';
import { Migration20261129120000_tree } from './Migration20261129120000_tree.ts';
import { Migration20261129123000_ui_sessions } from './Migration20261129123000_ui_sessions.ts';
import { Migration20261129125417_webdav } from './Migration20261129125417_webdav.ts';
import { Migration20261129140937_instances } from './Migration20261129140937_instances.ts';
import { Migration20261130030000_no_blob_sha256 } from './Migration20261130030000_no_blob_sha256.ts';

/** Every PostgreSQL migration, oldest first. */
export const POSTGRESQL_MIGRATIONS: MigrationObject[] = [
  { name: 'Migration20261129103534_initial', class: Migration20261129103534_initial },
  { name: 'Migration20261129120000_tree', class: Migration20261129120000_tree },
  { name: 'Migration20261129123000_ui_sessions', class: Migration20261129123000_ui_sessions },
  { name: 'Migration20261129125417_webdav', class: Migration20261129125417_webdav },
  { name: 'Migration20261129140937_instances', class: Migration20261129140937_instances },
  { name: 'Migration20261130030000_no_blob_sha256', class: Migration20261130030000_no_blob_sha256 },
];
