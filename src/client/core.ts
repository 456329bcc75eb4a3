// The client core: the whole API the front ends (shell, --json mode) call, one async method per
// command, typed results, typed events. It owns the session (token saved in the data dir), the local
// share records and the peer listener; the connection itself is tracker-link.ts's. No terminal here.

import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import { parseTrackerInfo } from '../common/tracker-info.ts'
import type { TrackerAddress } from '../common/tracker-info.ts'
import { parseHostPort } from '../protocol/control.ts'
import type { OpResults } from '../protocol/control.ts'
import { fileId } from '../protocol/file-meta.ts'
import { validateFileName, validateGroupId, validatePassword, validateUserId } from '../protocol/names.ts'
import { hashFile } from '../peer/hashing.ts'
import { listen } from '../security/transport.ts'
import type { Listener } from '../security/transport.ts'
import { defaultDataDir, loadClientId, loadSession, openDataDir, saveSession } from './data-dir.ts'
import type { DataDirLayout } from './data-dir.ts'
import { ShareBook } from './shares.ts'
import type { DroppedShare, ShareRecord } from './shares.ts'
import { TrackerLink } from './tracker-link.ts'
import type { ConnectedInfo } from './tracker-link.ts'

export type { ConnectedInfo } from './tracker-link.ts'
export type { DroppedShare } from './shares.ts'

const log = createLog('client:core')

export interface StartOptions {
  /** "ip:port" where this client serves pieces to other peers. */
  peerAddr: string
  trackersFile: string
  /** Defaults to ~/.peershare/client-<ip>-<port>. */
  dataDir?: string
}

export interface LoginResult {
  userId: string
  /** Shares announced again after their files were found unchanged. */
  restored: number
  /** Shares no longer offered: file missing or changed, or group gone. */
  dropped: DroppedShare[]
}

export type UploadResult = OpResults['upload_file'] & { path: string }

export interface UploadOptions {
  onProgress?: (doneBytes: number, totalBytes: number) => void
  signal?: AbortSignal
}

export interface ClientEvents {
  /** Reconnected after a drop, possibly to another tracker. */
  switched: [info: ConnectedInfo]
  disconnected: [address: string]
  /** The tracker no longer knows the saved session: the user must log in again. */
  sessionLost: [message: string]
  /** Shares dropped while restoring a resumed session (file changed or missing, group gone). */
  sharesDropped: [dropped: DroppedShare[]]
  /** An event pushed by the tracker. */
  trackerEvent: [name: string, data: unknown]
}

const NOT_LOGGED_IN = 'not logged in: login <user_id> <passwd> first (or create_user)'

export class Client extends EventEmitter<ClientEvents> {
  readonly peerAddr: string
  readonly clientId: string
  readonly dataDir: DataDirLayout
  readonly trackers: readonly TrackerAddress[]
  readonly #link: TrackerLink
  readonly #listener: Listener
  readonly #shares: ShareBook
  #userId: string | undefined
  #restorePending = false
  #closing: Promise<void> | undefined

  private constructor (init: { peerAddr: string, clientId: string, dataDir: DataDirLayout, trackers: TrackerAddress[],
    link: TrackerLink, listener: Listener, shares: ShareBook, userId: string | undefined }) {
    super()
    this.peerAddr = init.peerAddr
    this.clientId = init.clientId
    this.dataDir = init.dataDir
    this.trackers = init.trackers
    this.#link = init.link
    this.#listener = init.listener
    this.#shares = init.shares
    this.#userId = init.userId
    this.#restorePending = init.userId !== undefined
    this.#link.on('switched', (info) => this.emit('switched', info))
    this.#link.on('disconnected', (address) => this.emit('disconnected', address))
    this.#link.on('event', (name, data) => this.emit('trackerEvent', name, data))
    this.#link.on('sessionLost', (err) => { void this.#onSessionLost(err) })
    this.#link.on('connected', (info) => { if (info.resumed) void this.#restoreAfterResume() })
  }

  /**
   * Binds the peer port, opens the data dir and starts connecting to the trackers. Resolves once a
   * tracker answered or every tracker was tried once (the client keeps trying in the background).
   */
  static async start (opts: StartOptions): Promise<Client> {
    const peer = parsePeerAddr(opts.peerAddr)
    const trackers = await readTrackersFile(opts.trackersFile)
    const dataDir = await openDataDir(opts.dataDir ?? defaultDataDir(opts.peerAddr))
    const clientId = await loadClientId(dataDir)
    const shares = await ShareBook.open(dataDir.sharesFile)
    const session = await loadSession(dataDir)
    const listener = await bindPeerPort(peer.host, peer.port)
    const link = new TrackerLink({ trackers, clientId, peerAddr: opts.peerAddr, ...(session === undefined ? {} : { token: session.token }) })
    const client = new Client({ peerAddr: opts.peerAddr, clientId, dataDir, trackers, link, listener, shares, userId: session?.userId })
    try {
      await link.start()
    } catch (err) {
      await client.close()
      throw err
    }
    return client
  }

  /** The logged-in user, as far as this client knows. */
  get userId (): string | undefined {
    return this.#userId
  }

  /** The tracker connected now, if any. */
  get tracker (): ConnectedInfo | undefined {
    return this.#link.connected
  }

  async createUser (userId: string, password: string): Promise<OpResults['create_user']> {
    return await this.#link.request('create_user', { userId: validateUserId(userId), password: validatePassword(password) })
  }

  /** Logs in, saves the session for later runs, then re-verifies and re-announces this user's shares. */
  async login (userId: string, password: string): Promise<LoginResult> {
    const res = await this.#link.request('login', { userId: validateUserId(userId), password: validatePassword(password) })
    this.#link.setToken(res.token)
    this.#userId = res.userId
    this.#restorePending = false
    await saveSession(this.dataDir, { userId: res.userId, token: res.token })
    const { restored, dropped } = await this.#restoreShares(res.userId)
    return { userId: res.userId, restored, dropped }
  }

  /** Stops sharing on the tracker side (records are kept: login restores them) and forgets the session. */
  async logout (): Promise<OpResults['logout']> {
    const res = await this.#link.request('logout', {})
    await this.#forgetSession()
    return res
  }

  async createGroup (groupId: string): Promise<OpResults['create_group']> {
    return await this.#link.request('create_group', { groupId: validateGroupId(groupId) })
  }

  async joinGroup (groupId: string): Promise<OpResults['join_group']> {
    return await this.#link.request('join_group', { groupId: validateGroupId(groupId) })
  }

  /** Leaves the group; the tracker drops this user's shares in it, and so do the local records. */
  async leaveGroup (groupId: string): Promise<OpResults['leave_group']> {
    const res = await this.#link.request('leave_group', { groupId: validateGroupId(groupId) })
    const userId = this.#userId
    if (userId !== undefined) await this.#shares.remove((r) => r.userId === userId && r.groupId === res.groupId)
    return res
  }

  async listRequests (groupId: string): Promise<OpResults['list_requests']> {
    return await this.#link.request('list_requests', { groupId: validateGroupId(groupId) })
  }

  async acceptRequest (groupId: string, userId: string): Promise<OpResults['accept_request']> {
    return await this.#link.request('accept_request', { groupId: validateGroupId(groupId), userId: validateUserId(userId) })
  }

  async rejectRequest (groupId: string, userId: string): Promise<OpResults['reject_request']> {
    return await this.#link.request('reject_request', { groupId: validateGroupId(groupId), userId: validateUserId(userId) })
  }

  async listGroups (): Promise<OpResults['list_groups']> {
    return await this.#link.request('list_groups', {})
  }

  async listFiles (groupId: string): Promise<OpResults['list_files']> {
    return await this.#link.request('list_files', { groupId: validateGroupId(groupId) })
  }

  /**
   * Hashes the file locally (one pass), then announces its metadata to the group. The bytes stay
   * here; the record lets a later login re-announce it without hashing again.
   */
  async uploadFile (path: string, groupId: string, opts: UploadOptions = {}): Promise<UploadResult> {
    validateGroupId(groupId)
    const userId = this.#userId
    if (userId === undefined) throw new PeershareError('NOT_LOGGED_IN', NOT_LOGGED_IN)
    // ask first whether we may share there: hashing a big file to learn "not a member" wastes minutes
    await this.#link.request('list_files', { groupId })
    const abs = resolve(path)
    const { meta, mtimeMs } = await hashFile(abs, opts)
    const res = await this.#link.request('upload_file', { groupId, meta })
    const record: ShareRecord = { userId, groupId, fileId: fileId(meta), path: abs, name: meta.name, size: meta.size, mtimeMs, meta }
    await this.#shares.put(record)
    return { ...res, path: abs }
  }

  /** Stops sharing the file in the group, here and on the tracker. */
  async stopShare (groupId: string, fileName: string): Promise<OpResults['stop_share']> {
    validateGroupId(groupId)
    validateFileName(fileName)
    const userId = this.#userId
    try {
      return await this.#link.request('stop_share', { groupId, fileName })
    } finally {
      // the local record goes either way: the tracker answered (done or "not shared"), or the user asked
      // us to stop and a record would only re-announce it at the next login
      if (userId !== undefined) await this.#shares.remove((r) => r.userId === userId && r.groupId === groupId && r.name === fileName)
    }
  }

  /** Closes the tracker connection and the peer port. Idempotent. */
  close (): Promise<void> {
    this.#closing ??= Promise.all([this.#link.close(), this.#listener.close()]).then(() => {})
    return this.#closing
  }

  /** After a restart with a saved session: check the files once, re-announce the unchanged ones. */
  async #restoreAfterResume (): Promise<void> {
    const userId = this.#userId
    if (!this.#restorePending || userId === undefined) return
    this.#restorePending = false
    try {
      const { dropped } = await this.#restoreShares(userId)
      if (dropped.length > 0) this.emit('sharesDropped', dropped)
    } catch (err) {
      log.warn('could not restore the shares after resuming the session', { error: err as Error })
    }
  }

  async #restoreShares (userId: string): Promise<{ restored: number, dropped: DroppedShare[] }> {
    const { valid, dropped } = await this.#shares.verify(userId)
    for (const d of dropped) {
      // the tracker still lists us for a file we can no longer serve: withdraw it (best effort)
      await this.#link.request('stop_share', { groupId: d.groupId, fileName: d.name }).catch((err: unknown) => {
        log.info('could not withdraw a changed share', { groupId: d.groupId, name: d.name, error: err as Error })
      })
    }
    if (valid.length === 0) return { restored: 0, dropped }
    const res = await this.#link.request('reshare', { shares: valid.map((r) => ({ groupId: r.groupId, fileId: r.fileId })) })
    if (res.gone.length > 0) {
      const gone = new Set(res.gone.map((g) => `${g.groupId}\0${g.fileId}`))
      const removed = await this.#shares.remove((r) => r.userId === userId && gone.has(`${r.groupId}\0${r.fileId}`))
      for (const r of removed) dropped.push({ groupId: r.groupId, name: r.name, path: r.path, reason: 'gone' })
    }
    return { restored: res.restored, dropped }
  }

  async #onSessionLost (err: PeershareError): Promise<void> {
    const was = this.#userId
    await this.#forgetSession().catch((e: unknown) => log.warn('could not remove the saved session', { error: e as Error }))
    if (was !== undefined) this.emit('sessionLost', `the tracker ended the session of ${was} (${err.message})`)
  }

  async #forgetSession (): Promise<void> {
    this.#userId = undefined
    this.#restorePending = false
    this.#link.setToken(undefined)
    await saveSession(this.dataDir, undefined)
  }
}

function parsePeerAddr (text: string): { host: string, port: number } {
  const parsed = parseHostPort(text)
  if (parsed === undefined || !/^[\d.]+$|:/.test(parsed.host)) {
    throw new PeershareError('BAD_REQUEST', `'${text.slice(0, 60)}' is not an address to serve peers on: use IP:PORT, e.g. 127.0.0.1:7001`)
  }
  return parsed
}

async function readTrackersFile (path: string): Promise<TrackerAddress[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code ?? String(err)
    throw new PeershareError('NOT_FOUND', `cannot read the trackers file ${path}: ${why}`, { cause: err })
  }
  return parseTrackerInfo(text, path)
}

/** The peer server comes with downloads; until then the port is held (so it is ours) and idle. */
async function bindPeerPort (host: string, port: number): Promise<Listener> {
  try {
    return await listen({ host, port, onConnection: (socket) => socket.destroy() })
  } catch (err) {
    const errno = (err as { cause?: NodeJS.ErrnoException }).cause?.code
    if (errno === 'EADDRINUSE') {
      throw new PeershareError('UNAVAILABLE', `${host}:${port} is already in use: pick another port`, { cause: err })
    }
    throw err
  }
}
