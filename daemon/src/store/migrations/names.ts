/**
 * The names of the migrations, oldest first: the same in every dialect (each dialect's
 * index.ts lists the classes; a test checks that both agree with this list). Kept apart from
 * the classes, which import the migrator, so that the daemon can tell what is pending
 * without loading it.
 */
export const MIGRATION_NAMES: readonly string[] = [
  'Migration20261129103534_initial',
  'Migration20261129120000_tree',
  'Migration20261129123000_ui_sessions',
  'Migration20261129125417_webdav',
  'Migration20261129140937_instances',
  'Migration20261130030000_no_blob_sha256',
];

/** The table of applied migrations (MikroORM's default name). */
export const MIGRATIONS_TABLE = 'mikro_orm_migrations';
