// Provisions etcd for the tests the way testcontainers provisions a database: find `etcd` and
// `etcdctl` on the PATH; when missing and allowed (root on Debian), install Debian's packages;
// otherwise stop with the exact command to run. Never lets the etcd suites be skipped silently.
// Run by `npm test` (pretest) and .ci/run: `node scripts/ensure-etcd.ts [--quiet]`.

import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'

/** Debian bookworm ships 3.4.23; older releases lack flags and APIs the tests rely on. */
export const MIN_ETCD_VERSION = [3, 4, 0] as const
export const ETCD_PACKAGES = ['etcd-server', 'etcd-client'] as const
export const INSTALL_COMMAND = `apt-get update && apt-get install -y ${ETCD_PACKAGES.join(' ')}`

const BINARIES = ['etcd', 'etcdctl'] as const

/** The absolute path of `name` on the PATH, or undefined. */
export function findOnPath (name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not in this directory: keep looking
    }
  }
  return undefined
}

/** Parses `etcd --version` output ("etcd Version: 3.4.23\n...") into [major, minor, patch]. */
export function parseEtcdVersion (output: string): [number, number, number] | undefined {
  const m = /etcd Version:\s*(\d+)\.(\d+)\.(\d+)/.exec(output)
  if (m === null) return undefined
  return [Number(m[1]), Number(m[2]), Number(m[3])]
}

function atLeast (v: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    if ((v[i] ?? 0) !== (min[i] ?? 0)) return (v[i] ?? 0) > (min[i] ?? 0)
  }
  return true
}

function missing (): string[] {
  return BINARIES.filter((b) => findOnPath(b) === undefined)
}

function run (cmd: string, args: string[]): number {
  process.stderr.write(`ensure-etcd: running ${cmd} ${args.join(' ')}\n`)
  // apt's progress goes to our stderr so that the pretest step's stdout stays short
  const r = spawnSync(cmd, args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  })
  if (r.error !== undefined) throw r.error
  return r.status ?? 1
}

function fail (lines: string[]): never {
  process.stderr.write(lines.map((l) => `ensure-etcd: ${l}\n`).join(''))
  process.exit(1)
}

function canInstall (): boolean {
  return process.getuid?.() === 0 && existsSync('/etc/debian_version') && findOnPath('apt-get') !== undefined
}

function howToInstall (): string[] {
  if (existsSync('/etc/debian_version')) {
    return ['install it with:', `  sudo sh -c '${INSTALL_COMMAND}'`]
  }
  return ['install etcd >= 3.4 (server and etcdctl) so that `etcd` and `etcdctl` are on the PATH,',
    'e.g. on Debian/Ubuntu: ' + INSTALL_COMMAND]
}

/**
 * Debian's etcd-server enables and starts a system etcd on 2379/2380 (systemd, or its init.d
 * script where no policy-rc.d forbids it). Our clusters never use those ports, but a daemon nobody
 * asked for should not keep running after a test install: stop it (only right after we installed
 * it ourselves, never a service someone set up on purpose).
 */
function stopPackagedService (): void {
  if (existsSync('/run/systemd/system') && findOnPath('systemctl') !== undefined) {
    if (spawnSync('systemctl', ['is-active', '--quiet', 'etcd']).status !== 0) return
    if (run('systemctl', ['disable', '--now', 'etcd']) === 0) return
  } else if (existsSync('/etc/init.d/etcd')) {
    if (spawnSync('/etc/init.d/etcd', ['status'], { stdio: 'ignore' }).status !== 0) return
    if (run('/etc/init.d/etcd', ['stop']) === 0) return
  } else {
    return
  }
  process.stderr.write('ensure-etcd: could not stop the packaged etcd service; the tests never use its ports (2379/2380)\n')
}

function install (): void {
  // one apt-get update per run: a fresh machine has no package lists (or stale ones)
  if (run('apt-get', ['update']) !== 0) fail(['apt-get update failed', ...howToInstall()])
  if (run('apt-get', ['install', '-y', '--no-install-recommends', ...ETCD_PACKAGES]) !== 0) {
    fail([`apt-get install ${ETCD_PACKAGES.join(' ')} failed`, ...howToInstall()])
  }
  stopPackagedService()
}

export function ensureEtcd (opts: { quiet?: boolean } = {}): { etcd: string, etcdctl: string, version: string } {
  let absent = missing()
  if (absent.length > 0) {
    if (!canInstall()) {
      fail([`${absent.join(' and ')} not found on the PATH; the etcd test suites need a real etcd.`, ...howToInstall()])
    }
    process.stderr.write(`ensure-etcd: ${absent.join(' and ')} not found; installing Debian's ${ETCD_PACKAGES.join(' and ')}\n`)
    install()
    absent = missing()
    if (absent.length > 0) fail([`${absent.join(' and ')} still not on the PATH after the install`, ...howToInstall()])
  }
  const etcd = findOnPath('etcd')!
  const etcdctl = findOnPath('etcdctl')!
  const out = spawnSync(etcd, ['--version'], { encoding: 'utf8' })
  const version = parseEtcdVersion(`${out.stdout ?? ''}${out.stderr ?? ''}`)
  if (version === undefined) fail([`${etcd} --version did not print a version: ${out.error?.message ?? out.stdout}`])
  if (!atLeast(version, MIN_ETCD_VERSION)) {
    fail([`${etcd} is version ${version.join('.')}; the tests need etcd >= ${MIN_ETCD_VERSION.join('.')}`, ...howToInstall()])
  }
  if (opts.quiet !== true) process.stderr.write(`ensure-etcd: using etcd ${version.join('.')} (${etcd}, ${etcdctl})\n`)
  return { etcd, etcdctl, version: version.join('.') }
}

if (import.meta.main) ensureEtcd({ quiet: process.argv.includes('--quiet') })
