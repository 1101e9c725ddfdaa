/**
 * Packaging checks: the systemd unit (systemd-analyze verify and security) and the Dockerfile
 * (parsed, not grepped). Fast: no daemon, no network, no image build.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const UNIT_PATH = path.join(ROOT, 'systemd/sealdrop.service');
const UNIT_NAME = 'sealdrop.service';
/** Where the README installs node and the checkout; rewritten to this machine's paths for verify. */
const INSTALLED_NODE = '/usr/bin/node';
const INSTALLED_ROOT = '/opt/sealdrop';
/** systemd-analyze security rates 0.0 (PERFECT) to 10.0 (DANGEROUS); "OK" ends at 4.9. */
const ACCEPTED_LEVELS = ['PERFECT', 'SAFE', 'OK'];
const MAX_EXPOSURE = 4.9;

// ---------------------------------------------------------------------------------------------
// systemd unit files

interface UnitEntry { section: string; key: string; value: string; line: number }

/** Unit file syntax (systemd.syntax(7)): [Section], Key=Value, # and ; comments, trailing-backslash continuations. */
function parseUnit(text: string): UnitEntry[] {
  const entries: UnitEntry[] = [];
  const lines = text.split('\n');
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = `${line.slice(0, -1)} `;
      let next = (lines[++i] ?? '').trim();
      // Comment lines inside a continuation are dropped; the value goes on after them.
      while ((next.startsWith('#') || next.startsWith(';')) && i + 1 < lines.length) next = (lines[++i] ?? '').trim();
      line += next;
    }
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = header[1] ?? '';
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`unit line ${start}: no "=" in ${JSON.stringify(line)}`);
    entries.push({ section, key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim(), line: start });
  }
  return entries;
}

function unitValues(entries: UnitEntry[], section: string, key: string): string[] {
  return entries.filter((e) => e.section === section && e.key === key).map((e) => e.value);
}

/** The value in effect: the last assignment (an empty assignment resets lists, so it counts too). */
function unitValue(entries: UnitEntry[], section: string, key: string): string | undefined {
  return unitValues(entries, section, key).at(-1);
}

/** The unit with the install paths replaced by real paths on this machine, so verify checks real files. */
function localizeUnit(text: string, nodePath: string, repoRoot: string): string {
  return text
    .split('\n')
    .map((line) => {
      const m = /^(\s*)(ExecStart|WorkingDirectory|Documentation)(\s*=\s*)(.*)$/.exec(line);
      if (!m) return line;
      const [, indent = '', key = '', sep = '', value = ''] = m;
      let v = value;
      if (key === 'ExecStart') {
        if (!v.startsWith(`${INSTALLED_NODE} `)) throw new Error(`ExecStart must start with ${INSTALLED_NODE}: ${v}`);
        v = nodePath + v.slice(INSTALLED_NODE.length);
      }
      v = v.split(INSTALLED_ROOT).join(repoRoot);
      return `${indent}${key}${sep}${v}`;
    })
    .join('\n');
}

function findSystemdAnalyze(): string {
  for (const candidate of ['/usr/bin/systemd-analyze', '/bin/systemd-analyze']) if (existsSync(candidate)) return candidate;
  const found = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim() !== '') return found.stdout.trim();
  throw new Error('systemd-analyze not found: install the Debian package `systemd` (apt-get install systemd; .ci/run does it)');
}

const ANALYZE_ENV = { ...process.env, SYSTEMD_LOG_LEVEL: 'info', SYSTEMD_LOG_COLOR: '0', SYSTEMD_PAGER: 'cat', SYSTEMD_COLORS: '0', LC_ALL: 'C' };

interface VerifyResult { status: number | null; aboutUnit: string[]; other: string[] }

/**
 * `systemd-analyze verify` exits 0 even after "Unknown key" or "Failed to parse" warnings, so
 * the output is read too: every line naming the unit (its path or name) is a finding.
 */
function verifyUnit(analyze: string, file: string): VerifyResult {
  const r = spawnSync(analyze, ['verify', '--man=no', '--generators=no', '--recursive-errors=no', file], { encoding: 'utf8', env: ANALYZE_ENV, timeout: 20_000 });
  const lines = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const mentions = (l: string): boolean => l.includes(file) || l.includes(path.basename(file));
  return { status: r.status, aboutUnit: lines.filter(mentions), other: lines.filter((l) => !mentions(l)) };
}

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/** The unit as installed, under its own name in a fresh folder (verify takes the unit name from the file name). */
function unitCopy(text: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-unit-'));
  tmpDirs.push(dir);
  const file = path.join(dir, UNIT_NAME);
  writeFileSync(file, text);
  return file;
}

function readmeSection(title: string): string {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README.md has no section "## ${title}"`);
  const end = readme.indexOf('\n## ', start + 4);
  return readme.slice(start, end < 0 ? undefined : end);
}

describe('systemd unit', () => {
  const unitText = readFileSync(UNIT_PATH, 'utf8');
  const unit = parseUnit(unitText);
  const svc = (key: string): string | undefined => unitValue(unit, 'Service', key);

  it('has the hardening the operations issue asks for, and keeps what the daemon needs', () => {
    const user = svc('User');
    expect(user, 'dedicated user').toBeTruthy();
    expect(['root', '0']).not.toContain(user);
    expect(svc('DynamicUser') ?? 'no').toBe('no'); // the data folder and the key belong to the static user
    expect(svc('ProtectSystem')).toBe('strict');
    expect(unitValues(unit, 'Service', 'ReadWritePaths').join(' ').split(/\s+/)).toContain('/var/lib/sealdrop');
    expect(unitValues(unit, 'Service', 'Environment')).toContain('SEALDROP_STORAGE__DATA_DIR=/var/lib/sealdrop');
    for (const key of ['NoNewPrivileges', 'PrivateTmp', 'PrivateDevices']) expect(svc(key), key).toBe('yes');
    expect(new Set(svc('RestrictAddressFamilies')?.split(/\s+/))).toEqual(new Set(['AF_UNIX', 'AF_INET', 'AF_INET6']));
    expect(svc('CapabilityBoundingSet'), 'no capabilities: every port is above 1024').toBe('');
    expect(svc('AmbientCapabilities') ?? '').toBe('');
    expect(svc('Restart')).toBe('on-failure');
    // V8's JIT needs writable+executable memory: MemoryDenyWriteExecute=yes would stop Node.
    expect(svc('MemoryDenyWriteExecute') ?? 'no').toBe('no');
    // Node asks for memory protection keys at start-up; without @pkey seccomp would kill it.
    const filters = unitValues(unit, 'Service', 'SystemCallFilter').filter((f) => !f.startsWith('~'));
    expect(filters.join(' ').split(/\s+/)).toContain('@pkey');
  });

  it('passes systemd-analyze verify (install paths mapped to this machine)', () => {
    const analyze = findSystemdAnalyze();
    const localized = localizeUnit(unitText, process.execPath, ROOT);
    const execStart = unitValue(parseUnit(localized), 'Service', 'ExecStart') ?? '';
    const script = execStart.split(/\s+/).find((a) => a.endsWith('/sealdrop.js'));
    expect(script, 'ExecStart runs daemon/bin/sealdrop.js').toBe(path.join(ROOT, 'daemon/bin/sealdrop.js'));
    expect(existsSync(script ?? ''), `${script} exists`).toBe(true);
    expect(unitValue(parseUnit(localized), 'Service', 'WorkingDirectory')).toBe(ROOT);

    const result = verifyUnit(analyze, unitCopy(localized));
    if (result.other.length > 0) console.warn(`systemd-analyze verify, about other units:\n${result.other.join('\n')}`);
    expect(result.aboutUnit, 'warnings about the unit').toEqual([]);
    expect(result.status, [...result.aboutUnit, ...result.other].join('\n')).toBe(0);
  });

  it('verify check catches a broken unit (the check itself is not blind)', () => {
    const analyze = findSystemdAnalyze();
    const broken = localizeUnit(unitText, process.execPath, ROOT).replace('[Service]\n', '[Service]\nProtectSytem=strict\nRestart=sometimes\n');
    const result = verifyUnit(analyze, unitCopy(broken));
    expect(result.aboutUnit.join('\n')).toMatch(/Unknown key 'ProtectSytem'/);
    expect(result.aboutUnit.join('\n')).toMatch(/restart specifier.*sometimes/i);
    const missingNode = verifyUnit(analyze, unitCopy(localizeUnit(unitText, '/nonexistent/node', ROOT)));
    expect(missingNode.status).not.toBe(0);
  });

  it(`systemd-analyze security rates the unit ${ACCEPTED_LEVELS.join('/')} (exposure <= ${MAX_EXPOSURE}), as the README states`, () => {
    const analyze = findSystemdAnalyze();
    const file = unitCopy(localizeUnit(unitText, process.execPath, ROOT));
    const r = spawnSync(analyze, ['security', '--offline=yes', '--no-pager', file], { encoding: 'utf8', env: ANALYZE_ENV, timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    const m = /Overall exposure level for sealdrop\.service: (\d+\.\d) ([A-Z]+)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    const exposure = Number(m?.[1]);
    const level = m?.[2] ?? '';
    console.log(`systemd-analyze security: ${m?.[0]}`);
    expect(ACCEPTED_LEVELS, r.stdout).toContain(level);
    expect(exposure).toBeLessThanOrEqual(MAX_EXPOSURE);

    // The README quotes the figure; scores differ between systemd versions, so compare on the one it names.
    const section = readmeSection('Install on a Linux server with systemd');
    const documented = /Overall exposure level for sealdrop\.service: (\d+\.\d) ([A-Z]+)/.exec(section);
    expect(documented, 'README quotes the overall exposure line').not.toBeNull();
    const docVersion = /systemd (\d+)/.exec(section)?.[1];
    const version = /^systemd (\d+)/.exec(execFileSync(analyze, ['--version'], { encoding: 'utf8' }))?.[1];
    if (docVersion === version) expect(`${documented?.[1]} ${documented?.[2]}`, 'README figure (update it)').toBe(`${m?.[1]} ${level}`);
  });
});

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  keyword: string; // upper case
  flags: Record<string, string>; // --from=build, --chown=..., --interval=30s
  args: string; // rest after the flags, continuations joined
  json?: string[]; // exec form, when args is a JSON array of strings
  heredocs: string[];
  line: number;
}

interface Stage { index: number; name?: string; base: string; parent?: Stage; instructions: Instruction[] }

/** Dockerfile syntax: parser directives, comments, escape-char continuations, heredocs, flags, exec form. */
function parseDockerfile(text: string): { globalArgs: Instruction[]; stages: Stage[] } {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  let escape = '\\';
  let i = 0;
  // Parser directives: only at the very top, before any blank line, comment or instruction.
  for (; i < lines.length; i++) {
    const d = /^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$/.exec(lines[i] ?? '');
    if (!d) break;
    if (d[1]?.toLowerCase() === 'escape') escape = d[2] ?? '\\';
  }
  const isComment = (l: string): boolean => l.trimStart().startsWith('#');
  const continues = (l: string): boolean => l.trimEnd().endsWith(escape);

  const instructions: Instruction[] = [];
  for (; i < lines.length; i++) {
    const first = lines[i] ?? '';
    if (first.trim() === '' || isComment(first)) continue;
    const start = i + 1;
    let logical = first.trimEnd();
    while (continues(logical)) {
      logical = logical.slice(0, -escape.length);
      i++;
      // Comment and empty lines inside a continuation are dropped by the builder.
      while (i < lines.length && ((lines[i] ?? '').trim() === '' || isComment(lines[i] ?? ''))) i++;
      if (i >= lines.length) break;
      logical += (lines[i] ?? '').trimEnd();
    }
    const m = /^\s*([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(logical);
    if (!m) throw new Error(`Dockerfile line ${start}: not an instruction: ${JSON.stringify(logical)}`);
    const keyword = (m[1] ?? '').toUpperCase();
    let rest = (m[2] ?? '').trim();
    const flags: Record<string, string> = {};
    for (let f = /^--([a-zA-Z-]+)(?:=(\S*))?\s*/.exec(rest); f; f = /^--([a-zA-Z-]+)(?:=(\S*))?\s*/.exec(rest)) {
      flags[f[1] ?? ''] = f[2] ?? 'true';
      rest = rest.slice(f[0].length);
    }
    // Heredocs (RUN <<EOF ... EOF): the body lines belong to this instruction.
    const heredocs: string[] = [];
    for (const h of ['RUN', 'COPY', 'ADD'].includes(keyword) ? rest.matchAll(/<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)\2/g) : []) {
      const body: string[] = [];
      for (i++; i < lines.length; i++) {
        const l = lines[i] ?? '';
        if ((h[1] === '-' ? l.replace(/^\t+/, '') : l) === h[3]) break;
        body.push(l);
      }
      if (i >= lines.length) throw new Error(`Dockerfile line ${start}: heredoc ${h[3]} not terminated`);
      heredocs.push(body.join('\n'));
    }
    let json: string[] | undefined;
    if (rest.startsWith('[')) {
      try {
        const parsed: unknown = JSON.parse(rest);
        if (Array.isArray(parsed) && parsed.every((x) => typeof x === 'string')) json = parsed as string[];
      } catch {
        json = undefined; // shell form that happens to start with "["
      }
    }
    instructions.push({ keyword, flags, args: rest, ...(json ? { json } : {}), heredocs, line: start });
  }

  const globalArgs: Instruction[] = [];
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const words = ins.args.split(/\s+/);
      const as = words.findIndex((w) => w.toUpperCase() === 'AS');
      const base = words[0] ?? '';
      const name = as > 0 ? words[as + 1]?.toLowerCase() : undefined;
      const parent = stages.find((s) => s.name === base.toLowerCase());
      stages.push({ index: stages.length, base, instructions: [], ...(name ? { name } : {}), ...(parent ? { parent } : {}) });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new Error(`Dockerfile line ${ins.line}: ${ins.keyword} before the first FROM`);
      globalArgs.push(ins);
    } else {
      stages.at(-1)?.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** A stage with the stages it is built FROM, oldest first. */
function lineage(stage: Stage): Stage[] {
  return stage.parent ? [...lineage(stage.parent), stage] : [stage];
}

function stageRef(stages: Stage[], ref: string): Stage | undefined {
  return /^\d+$/.test(ref) ? stages[Number(ref)] : stages.find((s) => s.name === ref.toLowerCase());
}

/** Shell words of a RUN (shell form, exec form or heredoc bodies), split into simple commands. */
function runCommands(ins: Instruction): string[][] {
  const scripts = ins.json ? [ins.json.join(' ')] : [ins.args, ...ins.heredocs];
  const commands: string[][] = [];
  for (const script of scripts) {
    for (const part of script.split(/&&|\|\||;|\||\n/)) {
      const words = part.trim().split(/\s+/).filter((w) => w !== '');
      while (words.length > 0 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0] ?? '')) words.shift(); // VAR=value npm ...
      if (words.length > 0) commands.push(words);
    }
  }
  return commands;
}

/** npm ci and npm install with their aliases (npm help ci, npm help install). */
const NPM_INSTALL_COMMANDS = new Set(['ci', 'clean-install', 'ic', 'install-clean', 'isntall-clean', 'install', 'i', 'in', 'ins', 'inst', 'insta', 'instal', 'isnt', 'isnta', 'isntal', 'isntall', 'add']);

type NpmInstall = { words: string[]; omitsDev: boolean };

/** npm ci / install / i / add commands of a stage's RUN instructions. */
function npmInstalls(stage: Stage): NpmInstall[] {
  const found: NpmInstall[] = [];
  for (const ins of stage.instructions.filter((x) => x.keyword === 'RUN')) {
    for (const words of runCommands(ins)) {
      if (path.basename(words[0] ?? '') !== 'npm') continue;
      const sub = words.slice(1).find((w) => !w.startsWith('-'));
      if (!NPM_INSTALL_COMMANDS.has(sub ?? '')) continue;
      const omitsDev = words.some((w) => w === '--omit=dev' || w === '--production' || w === '--only=production' || w === '--only=prod');
      found.push({ words, omitsDev });
    }
  }
  return found;
}

/** WORKDIR in effect at the end of a stage (and its parents). */
function workdir(stage: Stage): string {
  let dir = '/';
  for (const s of lineage(stage)) {
    for (const ins of s.instructions.filter((x) => x.keyword === 'WORKDIR')) dir = path.posix.resolve(dir, ins.args);
  }
  return dir;
}

/** ENV of a stage: `ENV a=b c="d e"` and the legacy `ENV key value`. */
function envOf(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const s of lineage(stage)) {
    for (const ins of s.instructions.filter((x) => x.keyword === 'ENV')) {
      if (!/^[A-Za-z_][A-Za-z0-9_.-]*=/.test(ins.args)) {
        const [key, ...value] = ins.args.split(/\s+/);
        env.set(key ?? '', value.join(' '));
        continue;
      }
      for (const p of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)) {
        const raw = p[2] ?? '';
        env.set(p[1] ?? '', /^["']/.test(raw) ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw);
      }
    }
  }
  return env;
}

describe('unit file parser', () => {
  it('joins continuations across comment lines and keeps sections apart', () => {
    const entries = parseUnit(['# head', '[Service]', 'ExecStart=/bin/a\\', '# inside', '  --flag', '; other', 'User=x', '[Install]', 'WantedBy=multi-user.target'].join('\n'));
    expect(entries.map((e) => [e.section, e.key, e.value])).toEqual([
      ['Service', 'ExecStart', '/bin/a --flag'],
      ['Service', 'User', 'x'],
      ['Install', 'WantedBy', 'multi-user.target'],
    ]);
  });
});

describe('Dockerfile parser', () => {
  it('handles continuations with comments inside, stages, flags, exec form and heredocs', () => {
    const { globalArgs, stages } = parseDockerfile(
      [
        '# syntax=docker/dockerfile:1',
        'ARG NODE=20',
        'FROM node:20 AS Deps',
        'RUN npm ci \\',
        '# a comment inside the continuation',
        '    --omit=dev',
        'FROM deps AS test',
        'RUN <<EOF',
        'npm install',
        'EOF',
        'from node:20',
        'copy --from=deps --chown=1:1 /app/node_modules /app/node_modules',
        'CMD ["node", "x.js"]',
      ].join('\n'),
    );
    expect(globalArgs.map((a) => a.args)).toEqual(['NODE=20']);
    expect(stages.map((s) => [s.name, s.base, s.parent?.name])).toEqual([['deps', 'node:20', undefined], ['test', 'deps', 'deps'], [undefined, 'node:20', undefined]]);
    expect(npmInstalls(stages[0] as Stage)).toEqual([{ words: ['npm', 'ci', '--omit=dev'], omitsDev: true }]);
    expect(npmInstalls(stages[1] as Stage)).toEqual([{ words: ['npm', 'install'], omitsDev: false }]);
    const copy = stages[2]?.instructions[0];
    expect(copy?.flags).toEqual({ from: 'deps', chown: '1:1' });
    expect(copy?.args).toBe('/app/node_modules /app/node_modules');
    expect(stages[2]?.instructions[1]?.json).toEqual(['node', 'x.js']);
  });
});

describe('Dockerfile', () => {
  const { stages } = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
  const final = stages.at(-1) as Stage;
  const finalInstructions = lineage(final).flatMap((s) => s.instructions);
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { devDependencies?: Record<string, string> };

  it('is multi-stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
  });

  it('runs the final stage as a non-root user', () => {
    const users = finalInstructions.filter((x) => x.keyword === 'USER');
    expect(users.length, 'USER in the final stage').toBeGreaterThan(0);
    const user = (users.at(-1)?.args ?? '').split(':')[0]?.trim() ?? '';
    expect(user).not.toBe('');
    expect(['root', '0']).not.toContain(user);
  });

  it('has a HEALTHCHECK with a CMD and a VOLUME for the data folder', () => {
    const hc = finalInstructions.filter((x) => x.keyword === 'HEALTHCHECK').at(-1);
    expect(hc, 'HEALTHCHECK').toBeDefined();
    const [cmdWord, ...cmd] = (hc?.args ?? '').split(/\s+/);
    expect(cmdWord?.toUpperCase()).toBe('CMD');
    expect(cmd.join(' ').trim()).not.toBe('');
    const volumes = finalInstructions
      .filter((x) => x.keyword === 'VOLUME')
      .flatMap((x) => (x.json ?? x.args.split(/\s+/)).filter((v) => v !== ''));
    expect(volumes.length, 'VOLUME').toBeGreaterThan(0);
    const dataDir = envOf(final).get('SEALDROP_STORAGE__DATA_DIR');
    expect(volumes).toContain(dataDir);
  });

  it('gets node_modules only from a stage that installed production dependencies', () => {
    // The final stage (and what it is built FROM) never installs dev dependencies itself.
    for (const s of lineage(final)) for (const n of npmInstalls(s)) expect(n.omitsDev, `stage ${s.name ?? s.index}: ${n.words.join(' ')}`).toBe(true);
    const sources: Stage[] = lineage(final).some((s) => npmInstalls(s).length > 0) ? [final] : [];
    for (const copy of finalInstructions.filter((x) => (x.keyword === 'COPY' || x.keyword === 'ADD') && x.flags.from !== undefined)) {
      const from = stageRef(stages, copy.flags.from ?? '');
      if (!from) continue; // an external image: checked below for node_modules
      const srcs = (copy.json ?? copy.args.split(/\s+/)).slice(0, -1).map((s) => path.posix.resolve(workdir(from), s));
      const modules = path.posix.join(workdir(from), 'node_modules');
      if (srcs.some((s) => modules === s || modules.startsWith(`${s}/`) || s.startsWith(`${modules}/`))) sources.push(from);
    }
    for (const copy of finalInstructions.filter((x) => x.keyword === 'COPY' || x.keyword === 'ADD')) {
      if (copy.flags.from !== undefined && stageRef(stages, copy.flags.from)) continue;
      expect(copy.args, `line ${copy.line}: node_modules from outside the build`).not.toMatch(/node_modules/);
    }
    expect(sources.length, 'the final stage gets node_modules from somewhere').toBeGreaterThan(0);
    for (const source of sources) {
      const installs = lineage(source).flatMap(npmInstalls);
      expect(installs.length, `stage ${source.name ?? source.index} installs with npm`).toBeGreaterThan(0);
      for (const n of installs) expect(n.omitsDev, `stage ${source.name ?? source.index}: ${n.words.join(' ')}`).toBe(true);
    }
  });

  it('copies every local (file:) dependency into the stage that installs before it installs', () => {
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    const local = [manifest.dependencies, manifest.optionalDependencies].flatMap((deps) =>
      Object.values(deps ?? {})
        .filter((spec) => spec.startsWith('file:'))
        .map((spec) => path.posix.normalize(spec.slice('file:'.length))),
    );
    expect(local.length, 'package.json has a file: dependency (daemon/native/malloc-trim)').toBeGreaterThan(0);
    const installer = stages.find((s) => npmInstalls(s).length > 0);
    expect(installer, 'a stage runs npm ci').toBeDefined();
    const instructions = installer?.instructions ?? [];
    const npmLine = instructions.find((x) => x.keyword === 'RUN' && npmInstalls({ ...(installer as Stage), instructions: [x] }).length > 0)?.line ?? 0;
    const copied = instructions
      .filter((x) => x.keyword === 'COPY' && x.flags.from === undefined && x.line < npmLine)
      .flatMap((x) => (x.json ?? x.args.split(/\s+/)).slice(0, -1).map((src) => path.posix.normalize(src)));
    for (const dir of local) expect(copied.some((src) => src === '.' || dir === src || dir.startsWith(`${src}/`)), `${dir} copied before npm ci`).toBe(true);
  });

  it('names no devDependency in the final stage', () => {
    const dev = Object.keys(pkg.devDependencies ?? {});
    expect(dev.length).toBeGreaterThan(0);
    const text = finalInstructions.map((x) => [x.keyword, ...Object.entries(x.flags).map(([k, v]) => `--${k}=${v}`), x.args, ...x.heredocs].join(' ')).join('\n');
    const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    const used = dev.filter((name) => new RegExp(`(^|[^A-Za-z0-9@/._-])${escapeRe(name)}($|[^A-Za-z0-9/_-])`).test(text));
    expect(used).toEqual([]);
  });

  it('keeps node_modules, data, secrets, .git and test artefacts out of the build context', () => {
    const ignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => l.replace(/^\/+|\/+$/g, ''));
    for (const entry of ['node_modules', 'data', 'secrets', '.git', 'test-output', 'coverage', 'daemon/test', 'dist']) expect(ignore, entry).toContain(entry);
  });

  it('is described by the README Docker section', () => {
    const section = readmeSection('Docker');
    const user = finalInstructions.filter((x) => x.keyword === 'USER').at(-1)?.args.split(':')[0] ?? '';
    expect(section).toContain(`\`${user}\``);
    for (const v of finalInstructions.filter((x) => x.keyword === 'VOLUME').flatMap((x) => x.json ?? x.args.split(/\s+/))) expect(section).toContain(v);
    for (const p of finalInstructions.filter((x) => x.keyword === 'EXPOSE').flatMap((x) => x.args.split(/\s+/))) expect(section).toContain(p.split('/')[0] ?? '');
    expect(section).toContain('HEALTHCHECK');
  });
});

describe('how the daemon is run', () => {
  /** The node options before the script, and GLIBC_TUNABLES, of one way of running the daemon. */
  interface Launch { flags: string[]; tunables: string | undefined }
  const scriptIndex = (args: string[]): number => args.findIndex((a) => a.endsWith('daemon/bin/sealdrop.js'));

  function npmStart(): Launch {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    const words = (pkg.scripts.start ?? '').split(/\s+/);
    const node = words.indexOf('node');
    const env = new Map(words.slice(0, Math.max(node, 0)).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)] as const));
    return { flags: words.slice(node + 1, scriptIndex(words)), tunables: env.get('GLIBC_TUNABLES') };
  }

  function unit(): Launch {
    const entries = parseUnit(readFileSync(UNIT_PATH, 'utf8'));
    const words = (unitValue(entries, 'Service', 'ExecStart') ?? '').split(/\s+/);
    const env = unitValues(entries, 'Service', 'Environment').flatMap((v) => v.split(/\s+/));
    const tunables = env.find((e) => e.startsWith('GLIBC_TUNABLES='))?.slice('GLIBC_TUNABLES='.length);
    return { flags: words.slice(1, scriptIndex(words)), tunables };
  }

  function image(): Launch {
    const { stages } = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
    const final = stages.at(-1) as Stage;
    const entry = lineage(final).flatMap((s) => s.instructions).filter((x) => x.keyword === 'ENTRYPOINT').at(-1)?.json ?? [];
    return { flags: entry.slice(1, scriptIndex(entry)), tunables: envOf(final).get('GLIBC_TUNABLES') };
  }

  it('uses the same node options and malloc settings for npm start, the systemd unit and the image', () => {
    const start = npmStart();
    // The young generation and heap growth settings README "Memory" explains.
    expect(start.flags).toEqual(['--max-semi-space-size=1', '--heap-growing-percent=100', '--single-threaded-gc']);
    expect(start.tunables).toMatch(/^glibc\.malloc\.arena_max=1:/);
    expect(unit(), 'systemd/sealdrop.service').toEqual(start);
    expect(image(), 'Dockerfile').toEqual(start);
  });
});
