// The client core: the whole API the front ends (shell, --json mode) call, one async method per
// command, typed results, typed events. It owns the session (token saved in the data dir), the local
// share records, the peer server (what it serves: sources.ts) and the downloads (downloads.ts); the
// connection itself is tracker-link.ts's. No terminal here.

import { EventEmitter } from 'node:events'
import { readFile, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import { parseTrackerInfo } from '../common/tracker-info.ts'
import type { TrackerAddress } from '../common/tracker-info.ts'
import { parseHostPort } from '../protocol/control.ts'
import type { OpResults } from '../protocol/control.ts'
import { fileId, pieceCount } from '../protocol/file-meta.ts'
import { validateFileName, validateGroupId, validatePassword, validateUserId } from '../protocol/names.ts'
import { hashFile } from '../peer/hashing.ts'
import { openClientSecurity } from './client-security.ts'
import type { ClientSecurity } from './client-security.ts'
import { defaultDataDir, loadSession, openDataDir, saveSession } from './data-dir.ts'
import type { DataDirLayout } from './data-dir.ts'
import { DownloadRecords } from './download-records.ts'
import type { DownloadRecord } from './download-records.ts'
import { Downloads } from './downloads.ts'
import type { DownloadInfo, Holder } from './downloads.ts'
import { checkedFileMeta } from './results.ts'
import { Serving } from './serving.ts'
import { ShareBook } from './shares.ts'
import type { DroppedShare, ShareRecord } from './shares.ts'
import type { ShareSpec } from './sources.ts'
import { resolveTarget } from './targets.ts'
import { TrackerLink } from './tracker-link.ts'
import type { ConnectedInfo } from './tracker-link.ts'

export type { ConnectedInfo } from './tracker-link.ts'
export type { DroppedShare } from './shares.ts'
export type { DownloadInfo, DownloadState } from './downloads.ts'
export { identityFingerprint } from './client-security.ts'

const log = createLog('client:core')

export interface StartOptions {
  /** "ip:port" where this client serves pieces to other peers. */
  peerAddr: string
  trackersFile: string
  /** Defaults to ~/.peershare/client-<ip>-<port>. */
  dataDir?: string
  /** Upload cap of the peer server in bytes/s; 0 or absent: none. */
  uploadLimit?: number
  /** Plain TCP to trackers and peers, no tickets: for benchmarking only. */
  insecurePlaintext?: boolean
}

export interface LoginResult {
  userId: string
  /** Shares announced again after their files were found unchanged. */
  restored: number
  /** Shares no longer offered: file missing or changed, or group gone. */
  dropped: DroppedShare[]
}

export type UploadResult = OpResults['upload_file'] & { path: string }

export interface DownloadStarted {
  groupId: string
  name: string
  /** Absolute path the file gets once complete. */
  target: string
  size: number
  pieces: number
  /** Pieces already verified on disk (a download resumed into the same target). */
  piecesDone: number
}

export interface DownloadList {
  downloads: DownloadInfo[]
}

export interface UploadOptions {
  onProgress?: (doneBytes: number, totalBytes: number) => void
  signal?: AbortSignal
}

export interface ClientEvents {
  /** Reconnected after a drop, possibly to another tracker. */
  switched: [info: ConnectedInfo]
  disconnected: [address: string]
  /** A tracker's certificate was refused (pin mismatch, or changed since first use): the message says what to do. */
  untrusted: [address: string, message: string]
  /** The tracker no longer knows the saved session: the user must log in again. */
  sessionLost: [message: string]
  /** Shares dropped: while restoring a resumed session, or a shared file changed while served. */
  sharesDropped: [dropped: DroppedShare[]]
  /** A download completed or failed. */
  downloadFinished: [info: DownloadInfo]
  /** An event pushed by the tracker. */
  trackerEvent: [name: string, data: unknown]
}

const NOT_LOGGED_IN = 'not logged in: login <user_id> <passwd> first (or create_user)'

export class Client extends EventEmitter<ClientEvents> {
  readonly peerAddr: string
  /** The hex of this client's certificate fingerprint: the tracker knows the client by it. */
  readonly clientId: string
  /** "SHA256:<hex>": this client's identity (its TLS certificate). */
  readonly fingerprint: string
  readonly dataDir: DataDirLayout
  readonly trackers: readonly TrackerAddress[]
  readonly #link: TrackerLink
  readonly #serving: Serving
  readonly #shares: ShareBook
  readonly #downloads: Downloads
  #userId: string | undefined
  #restorePending = false
  readonly #stop = new AbortController()
  #closing: Promise<void> | undefined

  private constructor (init: { peerAddr: string, security: ClientSecurity, dataDir: DataDirLayout, trackers: TrackerAddress[],
    link: TrackerLink, serving: Serving, shares: ShareBook, records: DownloadRecords, userId: string | undefined }) {
    super()
    this.peerAddr = init.peerAddr
    this.clientId = init.security.clientId
    this.fingerprint = init.security.identity.fingerprint
    this.dataDir = init.dataDir
    this.trackers = init.trackers
    this.#link = init.link
    this.#serving = init.serving
    this.#shares = init.shares
    this.#userId = init.userId
    this.#restorePending = init.userId !== undefined
    this.#downloads = new Downloads(init.records, init.serving.sources, {
      locate: (r) => this.#locate(r),
      holding: (r) => this.#hold(r),
      verified: (r, piece) => this.#serving.notifyHave(r.fileId, piece),
      completed: (r) => this.#registerDownload(r),
      ...(init.security.dial === undefined ? {} : { dial: init.security.dial }),
    })
    this.#downloads.on('finished', (info) => this.emit('downloadFinished', info))
    this.#link.on('switched', (info) => this.emit('switched', info))
    this.#link.on('disconnected', (address) => this.emit('disconnected', address))
    this.#link.on('untrusted', (address, err) => this.emit('untrusted', address, err.message))
    this.#link.on('event', (name, data) => this.emit('trackerEvent', name, data))
    this.#link.on('sessionLost', (err) => { void this.#onSessionLost(err) })
    this.#link.on('connected', (info) => { if (info.resumed) void this.#afterResume() })
    init.security.attach(this.#link, this.trackers, this.peerAddr, this.#stop.signal)
  }

  /**
   * Binds the peer port, opens the data dir and starts connecting to the trackers. Resolves once a
   * tracker answered or every tracker was tried once (the client keeps trying in the background).
   */
  static async start (opts: StartOptions): Promise<Client> {
    const peer = parsePeerAddr(opts.peerAddr)
    const trackers = await readTrackersFile(opts.trackersFile)
    const dataDir = await openDataDir(opts.dataDir ?? defaultDataDir(opts.peerAddr))
    // the identity is the client's id everywhere: trackers bind its sessions and shares to it, peers its tickets
    const security = await openClientSecurity(dataDir.root, opts.trackersFile, opts.insecurePlaintext === true)
    const shares = await ShareBook.open(dataDir.sharesFile)
    const records = await DownloadRecords.open(dataDir.downloadsFile)
    const session = await loadSession(dataDir)
    // nothing is served before the client exists (no shares yet), so `client` is set when this runs
    let client: Client | undefined
    const serving = await Serving.start({
      security: security.peerServer,
      host: peer.host,
      port: peer.port,
      uploadLimit: opts.uploadLimit ?? 0,
      onShareChanged: (spec) => { if (client !== undefined) void client.#onShareChanged(spec) },
    })
    const link = new TrackerLink({ trackers, clientId: security.clientId, peerAddr: opts.peerAddr, security: security.link, ...(session === undefined ? {} : { token: session.token }) })
    client = new Client({ peerAddr: opts.peerAddr, security, dataDir, trackers, link, serving, shares, records, userId: session?.userId })
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

  /** Trackers whose certificate was refused, with why (until they present a trusted one). */
  get untrustedTrackers (): Array<{ address: string, message: string }> {
    return [...this.#link.untrusted].map(([address, err]) => ({ address, message: err.message }))
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
    await this.#resumeDownloads(res.userId)
    return { userId: res.userId, restored, dropped }
  }

  /**
   * Stops sharing on the tracker side (records are kept: login restores them), stops serving and
   * pauses this user's downloads (login resumes them), and forgets the session.
   */
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
    this.#serveShares()
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
    this.#serveShares()
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
      this.#serveShares()
    }
  }

  /**
   * Starts downloading a file of the group and returns at once; the download runs in the background
   * (showDownloads, waitDownloads). `dest`: an existing directory (the file lands there under its
   * own name) or the target path. Refuses to overwrite anything (EXISTS).
   */
  async downloadFile (groupId: string, fileName: string, dest: string): Promise<DownloadStarted> {
    validateGroupId(groupId)
    validateFileName(fileName)
    const userId = this.#userId
    if (userId === undefined) throw new PeershareError('NOT_LOGGED_IN', NOT_LOGGED_IN)
    const res = await this.#link.request('get_file', { groupId, fileName })
    const meta = checkedFileMeta(res.meta, res.fileId, fileName)
    const target = await resolveTarget(dest, meta.name)
    const info = await this.#downloads.start({ userId, groupId, fileId: res.fileId, target, meta })
    return { groupId, name: meta.name, target, size: meta.size, pieces: pieceCount(meta.size, meta.pieceBytes), piecesDone: info.piecesDone }
  }

  /** The logged-in user's downloads: running ones live, then finished ones. */
  showDownloads (): DownloadList {
    const userId = this.#userId
    return { downloads: userId === undefined ? [] : this.#downloads.list(userId) }
  }

  /** Resolves once none of the user's downloads runs, with the same list as showDownloads. */
  async waitDownloads (signal?: AbortSignal): Promise<DownloadList> {
    const userId = this.#userId
    if (userId !== undefined) await this.#downloads.waitIdle(userId, signal)
    return this.showDownloads()
  }

  /** Stops the downloads (resumable), then closes the tracker connection and the peer server. Idempotent. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort()
      await this.#downloads.close()
      await Promise.all([this.#link.close(), this.#serving.close()])
    })()
    return this.#closing
  }

  /** Every resumed connection: the first after a restart restores shares and downloads; later ones hold again. */
  async #afterResume (): Promise<void> {
    const userId = this.#userId
    if (userId === undefined) return
    if (!this.#restorePending) {
      // a new tracker connection knows nothing of our partial files: say hold again
      for (const r of this.#downloads.holding(userId)) this.#hold(r)
      return
    }
    this.#restorePending = false
    try {
      const { dropped } = await this.#restoreShares(userId)
      if (dropped.length > 0) this.emit('sharesDropped', dropped)
    } catch (err) {
      // a client closing right after start (a short --json script) interrupts the restore: not a problem
      if (this.#closing !== undefined) log.debug('share restore interrupted by close', { error: err as Error })
      else log.warn('could not restore the shares after resuming the session', { error: err as Error })
    }
    await this.#resumeDownloads(userId)
  }

  async #resumeDownloads (userId: string): Promise<void> {
    try {
      await this.#downloads.resumeUser(userId)
    } catch (err) {
      log.warn('could not resume the downloads', { error: err as Error })
    }
  }

  /** Serves exactly the current user's share records (none when logged out). */
  #serveShares (): void {
    const userId = this.#userId
    this.#serving.serveShares(userId === undefined || this.#restorePending ? [] : this.#shares.of(userId))
  }

  /** A shared file changed (or vanished) while served: stop sharing it here and on the tracker, tell the user once. */
  async #onShareChanged (spec: ShareSpec): Promise<void> {
    const userId = this.#userId
    this.#serving.dropFile(spec.fileId)
    if (userId === undefined) return
    const gone = await stat(spec.path).then(() => false, () => true)
    const removed = await this.#shares.remove((r) => r.userId === userId && r.fileId === spec.fileId && r.path === spec.path)
    if (removed.length === 0) return
    const dropped: DroppedShare[] = removed.map((r) => ({ groupId: r.groupId, name: r.name, path: r.path, reason: gone ? 'missing' : 'changed' }))
    for (const d of dropped) {
      await this.#link.request('stop_share', { groupId: d.groupId, fileName: d.name }).catch((err: unknown) => {
        log.info('could not withdraw a changed share', { groupId: d.groupId, name: d.name, error: err as Error })
      })
    }
    this.#serveShares() // the same file may be shared from elsewhere under another record
    this.emit('sharesDropped', dropped)
  }

  /** The holders of a download's file, for the download engine; another file under that name ends it. */
  async #locate (r: DownloadRecord): Promise<Holder[]> {
    const res = await this.#link.request('get_file', { groupId: r.groupId, fileName: r.meta.name })
    if (res.fileId !== r.fileId) {
      throw new PeershareError('NOT_FOUND', `${r.meta.name} in ${r.groupId} is now a different file: the download cannot continue`)
    }
    const ticket = res.ticket === undefined ? undefined : Buffer.from(res.ticket, 'base64')
    return res.holders.filter((h) => h.peerAddr !== this.peerAddr).map((h) => ({
      peerAddr: h.peerAddr,
      userId: h.userId,
      ...(h.fingerprint === undefined ? {} : { fingerprint: h.fingerprint }),
      ...(ticket === undefined ? {} : { ticket }),
      ...(res.ticketExpiresAt === undefined ? {} : { ticketExpiresAt: res.ticketExpiresAt }),
    }))
  }

  #hold (r: DownloadRecord): void {
    this.#link.request('hold', { groupId: r.groupId, fileId: r.fileId }).catch((err: unknown) => {
      // others only miss us as a source until the next connection says hold again
      log.info('could not announce a partial file', { groupId: r.groupId, name: r.meta.name, error: err as Error })
    })
  }

  /** A finished download becomes a full share of the file in its group, served from its final path. */
  async #registerDownload (r: DownloadRecord): Promise<void> {
    if (this.#userId !== r.userId) return // logged out meanwhile: the file is there, unshared
    const { mtimeMs } = await stat(r.target)
    await this.#link.request('upload_file', { groupId: r.groupId, meta: r.meta })
    await this.#shares.put({ userId: r.userId, groupId: r.groupId, fileId: r.fileId, path: r.target, name: r.meta.name, size: r.meta.size, mtimeMs, meta: r.meta })
    this.#serveShares()
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
    this.#serveShares()
    return { restored: res.restored, dropped }
  }

  async #onSessionLost (err: PeershareError): Promise<void> {
    const was = this.#userId
    await this.#forgetSession().catch((e: unknown) => log.warn('could not remove the saved session', { error: e as Error }))
    if (was !== undefined) this.emit('sessionLost', `the tracker ended the session of ${was} (${err.message})`)
  }

  async #forgetSession (): Promise<void> {
    const was = this.#userId
    this.#userId = undefined
    this.#restorePending = false
    this.#link.setToken(undefined)
    this.#serveShares() // nobody logged in: nothing of theirs is served
    if (was !== undefined) await this.#downloads.pauseUser(was)
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

