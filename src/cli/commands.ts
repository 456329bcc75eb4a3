// The command table shared by both front ends: name, arguments, help, the core call, and how a
// result reads for a person. The shell and --json mode differ only in how they print. Also the
// line tokenizer (quotes allow spaces in paths and passwords) and the human formatting helpers.

import { PeershareError } from '../common/errors.ts'
import type { Client, DownloadInfo, DroppedShare } from '../client/core.ts'

export interface CommandContext {
  client: Client
  /** Upload hashing progress (the shell draws a bar on a terminal). */
  onProgress?: (doneBytes: number, totalBytes: number) => void
  signal?: AbortSignal
}

export interface Command {
  name: string
  args: readonly string[]
  summary: string
  /** More detail for `help <command>`. */
  detail?: string
  /** Arguments whose value must not be kept in the shell history. */
  secretArgs?: readonly number[]
  run (ctx: CommandContext, args: string[]): Promise<unknown>
  /** The result as short lines for a person. */
  format (result: never): string
}

function command<R> (c: Omit<Command, 'run' | 'format'> & { run: (ctx: CommandContext, a: string[]) => Promise<R>, format: (r: R) => string }): Command {
  return c as unknown as Command
}

export const COMMANDS: readonly Command[] = [
  command({
    name: 'create_user', args: ['user_id', 'passwd'], secretArgs: [1], summary: 'create an account on the trackers',
    run: async ({ client }, [u, p]) => await client.createUser(u!, p!),
    format: (r) => `user ${r.userId} created: now login ${r.userId} <passwd>`,
  }),
  command({
    name: 'login', args: ['user_id', 'passwd'], secretArgs: [1], summary: 'log in (restores the files you shared from this client)',
    detail: 'The session is kept across tracker failover and client restarts until logout.',
    run: async ({ client }, [u, p]) => await client.login(u!, p!),
    format: (r) => [
      `logged in as ${r.userId}` + (r.restored > 0 ? `; sharing ${plural(r.restored, 'file')} again` : ''),
      ...r.dropped.map(droppedLine),
    ].join('\n'),
  }),
  command({
    name: 'logout', args: [], summary: 'log out and stop sharing until the next login',
    run: async ({ client }) => await client.logout(),
    format: (r) => `logged out ${r.userId}: your files are not shared until you login again`,
  }),
  command({
    name: 'create_group', args: ['group_id'], summary: 'create a group that you own',
    run: async ({ client }, [g]) => await client.createGroup(g!),
    format: (r) => `group ${r.groupId} created; you own it. Others can join_group ${r.groupId}`,
  }),
  command({
    name: 'join_group', args: ['group_id'], summary: 'ask the owner of a group to let you in',
    run: async ({ client }, [g]) => await client.joinGroup(g!),
    format: (r) => `asked to join ${r.groupId}: the owner has to accept_request ${r.groupId} <your user id>`,
  }),
  command({
    name: 'leave_group', args: ['group_id'], summary: 'leave a group (and stop sharing into it)',
    detail: 'When the owner leaves, the member who joined earliest becomes owner; a group left empty is deleted.',
    run: async ({ client }, [g]) => await client.leaveGroup(g!),
    format: (r) => `left ${r.groupId}` + (r.groupDeleted ? '; it had no other member and was deleted' : '') +
      (r.newOwner !== null ? `; ${r.newOwner} owns it now` : ''),
  }),
  command({
    name: 'list_requests', args: ['group_id'], summary: 'pending join requests of a group you own',
    run: async ({ client }, [g]) => await client.listRequests(g!),
    format: (r) => r.requests.length === 0
      ? `no pending requests for ${r.groupId}`
      : table(['USER', 'ASKED'], r.requests.map((q) => [q.userId, ago(q.requestedAt)])) +
        `\naccept_request ${r.groupId} <user_id> or reject_request ${r.groupId} <user_id>`,
  }),
  command({
    name: 'accept_request', args: ['group_id', 'user_id'], summary: 'let a user into your group',
    run: async ({ client }, [g, u]) => await client.acceptRequest(g!, u!),
    format: (r) => `${r.userId} is now a member of ${r.groupId}`,
  }),
  command({
    name: 'reject_request', args: ['group_id', 'user_id'], summary: 'turn down a join request',
    run: async ({ client }, [g, u]) => await client.rejectRequest(g!, u!),
    format: (r) => `rejected ${r.userId}'s request to join ${r.groupId}`,
  }),
  command({
    name: 'list_groups', args: [], summary: 'every group, its owner, and your part in it',
    run: async ({ client }) => await client.listGroups(),
    format: (r) => r.groups.length === 0
      ? 'no groups yet: create_group <group_id>'
      : table(['GROUP', 'OWNER', 'MEMBERS', 'YOU'], r.groups.map((g) => [g.groupId, g.owner, String(g.members), g.role === 'none' ? '-' : g.role]), [2]),
  }),
  command({
    name: 'list_files', args: ['group_id'], summary: 'files shared in a group you belong to',
    run: async ({ client }, [g]) => await client.listFiles(g!),
    format: (r) => r.files.length === 0
      ? `no files in ${r.groupId} yet: upload_file <file_path> ${r.groupId}`
      : table(['NAME', 'SIZE', 'SHARERS', 'ONLINE'], r.files.map((f) => [f.name, humanSize(f.size), sharersText(f.sharers), String(f.sharersOnline)]), [1, 3]),
  }),
  command({
    name: 'upload_file', args: ['file_path', 'group_id'], summary: 'share a file into a group (the bytes stay on your disk)',
    detail: 'The file is hashed here (SHA-1 per 512 KiB piece); only its metadata goes to the tracker.',
    run: async ({ client, onProgress, signal }, [p, g]) => await client.uploadFile(p!, g!, {
      ...(onProgress === undefined ? {} : { onProgress }),
      ...(signal === undefined ? {} : { signal }),
    }),
    format: (r) => `${r.alreadyShared ? 'already sharing' : 'sharing'} ${r.name} (${humanSize(r.size)}, ${plural(r.pieces, 'piece')}) in ${r.groupId}`,
  }),
  command({
    name: 'stop_share', args: ['group_id', 'file_name'], summary: 'stop sharing one of your files',
    run: async ({ client }, [g, f]) => await client.stopShare(g!, f!),
    format: (r) => `stopped sharing ${r.name} in ${r.groupId}` + (r.fileRemoved ? '; nobody shares it now, so it left the group' : ''),
  }),
  command({
    name: 'download_file', args: ['group_id', 'file_name', 'destination_path'], summary: 'download a file from the peers that have it (in the background)',
    detail: 'destination_path: an existing directory (the file keeps its name) or the path of the new file; nothing is ever overwritten. ' +
      'Pieces come from every peer at once and are checked (SHA-1) as they arrive; an interrupted download resumes after the next login. ' +
      'show_downloads shows progress, wait waits for the end.',
    run: async ({ client }, [g, f, d]) => await client.downloadFile(g!, f!, d!),
    format: (r) => `downloading ${clean(r.name)} (${humanSize(r.size)}, ${plural(r.pieces, 'piece')}) from ${r.groupId} into ${clean(r.target)}` +
      (r.piecesDone > 0 ? `; resuming with ${r.piecesDone} of ${r.pieces} pieces already here` : '') + ': show_downloads shows progress',
  }),
  command({
    name: 'show_downloads', args: [], summary: 'your downloads: [D] running, [C] completed, [F] failed',
    run: async ({ client }) => client.showDownloads(),
    format: (r) => r.downloads.length === 0 ? 'no downloads: download_file <group_id> <file_name> <destination_path>' : r.downloads.map(downloadLine).join('\n'),
  }),
  command({
    name: 'wait', args: [], summary: 'wait until no download is running, then show them (for scripts)',
    run: async ({ client, signal }) => await client.waitDownloads(signal),
    format: (r) => r.downloads.length === 0 ? 'no downloads' : r.downloads.map(downloadLine).join('\n'),
  }),
  command({
    name: 'help', args: [], summary: 'list the commands, or explain one: help <command>',
    run: async (_ctx, [name]) => helpResult(name),
    format: (r) => formatHelp(r),
  }),
  command({
    name: 'quit', args: [], summary: 'leave the client (also: exit, Ctrl-D)',
    run: async () => ({}),
    format: () => '',
  }),
]

const ALIASES: Record<string, string> = { exit: 'quit' }
const BY_NAME = new Map(COMMANDS.map((c) => [c.name, c]))

export const COMMAND_NAMES: readonly string[] = [...COMMANDS.map((c) => c.name), ...Object.keys(ALIASES)].sort()

export function findCommand (name: string): Command | undefined {
  return BY_NAME.get(ALIASES[name] ?? name)
}

export function usageOf (c: Command): string {
  if (c.name === 'help') return 'help [command]'
  return [c.name, ...c.args.map((a) => `<${a}>`)].join(' ')
}

/**
 * Runs one parsed line. Returns the canonical command name and its result; throws PeershareError
 * (BAD_REQUEST for an unknown command or a wrong argument count) with the command name attached.
 */
export async function execute (ctx: CommandContext, words: string[]): Promise<{ name: string, result: unknown }> {
  const [given, ...args] = words
  const c = findCommand(given ?? '')
  if (c === undefined) {
    throw new PeershareError('BAD_REQUEST', `unknown command '${clean(given ?? '').slice(0, 40)}': type help to see the commands`)
  }
  const arityOk = c.name === 'help' ? args.length <= 1 : args.length === c.args.length
  if (!arityOk) throw new PeershareError('BAD_REQUEST', `usage: ${usageOf(c)}`)
  return { name: c.name, result: await c.run(ctx, args) }
}

export function formatResult (name: string, result: unknown): string {
  const c = findCommand(name)
  return c === undefined ? '' : (c.format as (r: unknown) => string)(result)
}

/** Splits a command line into words; "..." or '...' keep spaces, backslash escapes one character. */
export function parseLine (line: string): string[] {
  const words: string[] = []
  let word = ''
  let inWord = false
  let quote: '"' | "'" | undefined
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!
    if (quote !== undefined) {
      if (ch === quote) quote = undefined
      else if (ch === '\\' && quote === '"' && i + 1 < line.length) word += line[++i]
      else word += ch
    } else if (ch === '"' || ch === "'") {
      quote = ch
      inWord = true
    } else if (ch === '\\' && i + 1 < line.length) {
      word += line[++i]
      inWord = true
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word)
      word = ''
      inWord = false
    } else {
      word += ch
      inWord = true
    }
  }
  if (quote !== undefined) throw new PeershareError('BAD_REQUEST', `unclosed ${quote} quote`)
  if (inWord) words.push(word)
  return words
}

/** The line as it may be kept in history: secret arguments (passwords) left out. */
export function historyLine (line: string): string {
  let words: string[]
  try { words = parseLine(line) } catch { return line }
  const c = findCommand(words[0] ?? '')
  if (c?.secretArgs === undefined) return line
  return words.filter((_, i) => !c.secretArgs!.includes(i - 1)).join(' ')
}

// ---------------------------------------------------------------------------------------------
// Help

export interface HelpResult {
  commands: Array<{ name: string, usage: string, summary: string, detail?: string }>
}

function helpResult (name: string | undefined): HelpResult {
  const list = name === undefined ? COMMANDS : [findCommand(name)]
  if (list[0] === undefined) throw new PeershareError('NOT_FOUND', `no command '${clean(name ?? '').slice(0, 40)}': type help to see the commands`)
  return {
    commands: (list as Command[]).map((c) => ({ name: c.name, usage: usageOf(c), summary: c.summary, ...(c.detail === undefined ? {} : { detail: c.detail }) })),
  }
}

function formatHelp (r: HelpResult): string {
  if (r.commands.length === 1) {
    const c = r.commands[0]!
    return [`usage: ${c.usage}`, `  ${c.summary}`, ...(c.detail === undefined ? [] : [`  ${c.detail}`])].join('\n')
  }
  const width = Math.max(...r.commands.map((c) => c.usage.length))
  return r.commands.map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`).join('\n')
}

// ---------------------------------------------------------------------------------------------
// Human formatting

/** Text from the network, safe to print on a terminal (no control characters or escapes). */
export function clean (text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')
}

export function humanSize (bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = bytes / 1024
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`
}

/** Aligned columns; `right` lists the columns to right-align (numbers). */
export function table (head: string[], rows: string[][], right: number[] = []): string {
  const all = [head, ...rows.map((r) => r.map(clean))]
  const widths = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)))
  return all.map((r) => r.map((cell, i) => {
    if (i === r.length - 1 && !right.includes(i)) return cell
    return right.includes(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)
  }).join('  ')).join('\n')
}

function sharersText (sharers: string[]): string {
  const shown = sharers.slice(0, 3).join(', ')
  return sharers.length > 3 ? `${shown} +${sharers.length - 3}` : shown
}

function plural (n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

function ago (ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  if (s < 60) return 'just now'
  if (s < 3600) return `${Math.round(s / 60)} min ago`
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`
  return new Date(ms).toISOString().slice(0, 10)
}

/** Bytes per second in decimal units, as network rates are usually given ("310 MB/s"). */
export function humanRate (bps: number): string {
  if (bps < 1000) return `${Math.round(bps)} B/s`
  const units = ['kB/s', 'MB/s', 'GB/s']
  let v = bps / 1000
  let u = 0
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000
    u++
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`
}

export function humanDuration (s: number): string {
  if (s < 60) return `${Math.max(0, Math.round(s))}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

/** Whole percent, never 100 before the end (a 99.7% download is not done). */
export function percentOf (done: number, total: number): number {
  if (total === 0 || done >= total) return 100
  return Math.min(99, Math.floor(done * 100 / total))
}

/** `[D] [g1] movie.mkv  42%  310 MB/s  ETA 3s  3 peers`, `[C] [g1] file`, `[F] [g1] file — reason`. */
export function downloadLine (d: DownloadInfo): string {
  const head = `[${d.groupId}] ${clean(d.file)}`
  if (d.state === 'completed') return `[C] ${head}`
  if (d.state === 'failed') return `[F] ${head} — ${clean(d.error?.message ?? 'failed')}`
  const pct = `${percentOf(d.bytesDone, d.bytes)}%`
  const connected = d.peers.filter((p) => p.connected).length
  if (d.state === 'waiting') return `[D] ${head}  ${pct}  waiting for peers`
  return `[D] ${head}  ${pct}  ${humanRate(d.speedBps)}  ETA ${d.etaS === null ? '?' : humanDuration(d.etaS)}  ${plural(connected, 'peer')}`
}

export function droppedLine (d: DroppedShare): string {
  const why = d.reason === 'missing' ? `${d.path} is gone`
    : d.reason === 'changed' ? `${d.path} changed since it was shared (upload_file it again to share the new version)`
      : 'the group no longer has it'
  return `no longer sharing ${clean(d.name)} in ${d.groupId}: ${clean(why)}`
}
