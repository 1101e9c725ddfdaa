import { Migration } from '@mikro-orm/migrations';

/**
 * Several instances: each daemon's heartbeat, the SFTP sessions open on it, and the folders
 * its sessions touched or upload into, so session-end sending works across instances.
 */
export class Migration20261129140937_instances extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table \`daemon_instance\` (\`id\` text not null, \`started_at\` datetime not null, \`heartbeat_at\` datetime not null, primary key (\`id\`));`);
    this.addSql(`create index \`daemon_instance_heartbeat_at_index\` on \`daemon_instance\` (\`heartbeat_at\`);`);
    this.addSql(`create table \`folder_activity\` (\`id\` text not null, \`account_id\` text not null, \`folder_key\` text not null, \`kind\` text check (\`kind\` in ('touched', 'transfer')) not null, \`instance_id\` text not null, \`at\` datetime not null, constraint \`folder_activity_account_id_foreign\` foreign key(\`account_id\`) references \`account\`(\`id\`) on delete cascade on update cascade, constraint \`folder_activity_instance_id_foreign\` foreign key(\`instance_id\`) references \`daemon_instance\`(\`id\`) on delete cascade on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`folder_activity_account_id_index\` on \`folder_activity\` (\`account_id\`);`);
    this.addSql(`create index \`folder_activity_instance_id_index\` on \`folder_activity\` (\`instance_id\`);`);
    this.addSql(`create index \`folder_activity_account_id_folder_key_index\` on \`folder_activity\` (\`account_id\`, \`folder_key\`);`);
    this.addSql(`create table \`protocol_session\` (\`id\` text not null, \`account_id\` text not null, \`instance_id\` text not null, \`opened_at\` datetime not null, constraint \`protocol_session_account_id_foreign\` foreign key(\`account_id\`) references \`account\`(\`id\`) on delete cascade on update cascade, constraint \`protocol_session_instance_id_foreign\` foreign key(\`instance_id\`) references \`daemon_instance\`(\`id\`) on delete cascade on update cascade, primary key (\`id\`));`);
    this.addSql(`create index \`protocol_session_account_id_index\` on \`protocol_session\` (\`account_id\`);`);
    this.addSql(`create index \`protocol_session_instance_id_index\` on \`protocol_session\` (\`instance_id\`);`);
  }
}
