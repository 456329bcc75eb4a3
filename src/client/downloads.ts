// The set of downloads of this client: starting them (peer/download.ts does the work), their
// progress for show_downloads, waiting for them, pausing a user's downloads at logout and resuming
// them at login or after a restart (from downloads.json and each `.part.resume`), and serving their
// verified pieces (SourceTable). What the tracker is told (hold, upload_file) is core.ts's, via hooks.

import { EventEmitter, once } from 'node:events'
import { PeershareError, toPeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import { pieceCount } from '../protocol/file-meta.ts'
import { Download } from '../peer/download.ts'
import type { DownloadProgress, PeerDial, PeerLocation } from '../peer/download.ts'
import { DownloadRecords } from './download-records.ts'
import type { DownloadRecord, PeerContribution } from './download-records.ts'
import type { SourceTable } from './sources.ts'

export type { DownloadRecord, PeerContribution } from './download-records.ts'

const log = createLog('client:downloads')

/** Downloads running at once; more is refused (BUSY) rather than splitting the link ever thinner. */
export const MAX_RUNNING_DOWNLOADS = 16

export type DownloadState = 'running' | 'waiting' | 'completed' | 'failed'

/**
 * One line of show_downloads (also the --json shape): the engine's progress, with the states a user
 * sees ('verifying' shows as running) and only the peers that gave pieces or are connected now.
 */
export type DownloadInfo = Omit<DownloadProgress, 'state' | 'peers'> & {
  state: DownloadState
  peers: PeerContribution[]
}

/** A holder of a file with, over TLS, its certificate and the ticket to show it (peer/download.ts). */
export type Holder = PeerLocation

/** What the downloads need from the rest of the client. */
export interface DownloadHooks {
  /** Current holders of the file (tracker get_file), this client excluded. */
  locate (record: DownloadRecord): Promise<Holder[]>
  /** The download has verified pieces to serve: tell the tracker (hold). Called once per run. */
  holding (record: DownloadRecord): void
  /** A piece was verified: peers connected to our server for that file learn it (have). */
  verified (record: DownloadRecord, piece: number): void
  /** The file has its final name: register it as a full share. Errors are logged, not fatal. */
  completed (record: DownloadRecord): Promise<void>
  /** How holders are dialled (TLS pinned to their certificate); absent: plain TCP. */
  dial?: PeerDial
}

export interface DownloadsEvents {
  /** A download completed or failed (front ends print one line). */
  finished: [info: DownloadInfo]
}

interface Run {
  record: DownloadRecord
  download: Download
  /** Paused by us (logout, close): not an end, the record stays 'running'. */
  stopped: boolean
}

export class Downloads extends EventEmitter<DownloadsEvents> {
  readonly #records: DownloadRecords
  readonly #sources: SourceTable
  readonly #hooks: DownloadHooks
  /** target → the download running into it. */
  readonly #runs = new Map<string, Run>()
  /** Changes whenever a run ends: waitIdle re-checks then. */
  readonly #ended = new EventEmitter()
  #closed = false

  constructor (records: DownloadRecords, sources: SourceTable, hooks: DownloadHooks) {
    super()
    this.#records = records
    this.#sources = sources
    this.#hooks = hooks
    this.#ended.setMaxListeners(0) // one per waiting `wait` command; they come and go
  }

  /** Starts a new download (the record is saved first: a crash right after still resumes it). */
  async start (record: Omit<DownloadRecord, 'state' | 'startedAt'>): Promise<DownloadInfo> {
    if (this.#closed) throw new PeershareError('UNAVAILABLE', 'the client is shutting down')
    if (this.#runs.has(record.target)) throw new PeershareError('EXISTS', `already downloading into ${record.target}`)
    const same = [...this.#runs.values()].find((r) => r.record.fileId === record.fileId && r.record.userId === record.userId)
    if (same !== undefined) throw new PeershareError('EXISTS', `already downloading ${record.meta.name} into ${same.record.target}`)
    if (this.#runs.size >= MAX_RUNNING_DOWNLOADS) {
      throw new PeershareError('BUSY', `${MAX_RUNNING_DOWNLOADS} downloads are running: wait for one to finish`)
    }
    const full: DownloadRecord = { ...record, state: 'running', startedAt: Date.now() }
    const run = await this.#launch(full) // EXISTS etc. before anything is recorded
    await this.#records.put(full)
    this.#watch(run)
    return infoOf(run)
  }

  /** Restarts the user's unfinished downloads from their resume records. Returns how many run. */
  async resumeUser (userId: string): Promise<number> {
    let n = 0
    for (const record of this.#records.of(userId)) {
      if (record.state !== 'running' || this.#runs.has(record.target) || this.#closed) continue
      try {
        this.#watch(await this.#launch(record))
        n++
      } catch (err) {
        const e = toPeershareError(err)
        log.warn('could not resume a download', { target: record.target, code: e.code, error: e })
        await this.#records.update(record, { state: 'failed', finishedAt: Date.now(), error: { code: e.code, message: e.message } })
      }
    }
    return n
  }

  /** Stops the user's running downloads, keeping them resumable (logout, lost session). */
  async pauseUser (userId: string): Promise<void> {
    const runs = [...this.#runs.values()].filter((r) => r.record.userId === userId)
    await Promise.all(runs.map((r) => this.#stop(r)))
  }

  /** The user's downloads, oldest first: running ones live, finished ones from their records. */
  list (userId: string): DownloadInfo[] {
    return this.#records.of(userId).map((record) => {
      const run = this.#runs.get(record.target)
      // a run that just ended is still here while it is registered as a share: its record says how it ended
      return run !== undefined && run.record === record && record.state === 'running' ? infoOf(run) : infoOfRecord(record)
    })
  }

  /** Downloads of the user that run now and have pieces to serve (to hold again after a reconnection). */
  holding (userId: string): DownloadRecord[] {
    return [...this.#runs.values()].filter((r) => r.record.userId === userId && r.download.progress().piecesDone > 0).map((r) => r.record)
  }

  /** Resolves when none of the user's downloads runs. */
  async waitIdle (userId: string, signal?: AbortSignal): Promise<void> {
    while ([...this.#runs.values()].some((r) => r.record.userId === userId)) {
      await once(this.#ended, 'ended', signal === undefined ? {} : { signal })
    }
  }

  /** Stops every download (resumable) and waits for their files to be closed. Idempotent. */
  async close (): Promise<void> {
    this.#closed = true
    await Promise.all([...this.#runs.values()].map((r) => this.#stop(r)))
  }

  async #launch (record: DownloadRecord): Promise<Run> {
    const download = await Download.open({
      meta: record.meta,
      fileId: record.fileId,
      groupId: record.groupId,
      target: record.target,
      locate: () => this.#hooks.locate(record),
      ...(this.#hooks.dial === undefined ? {} : { dial: this.#hooks.dial }),
    })
    return { record, download, stopped: false }
  }

  #watch (run: Run): void {
    const { record, download } = run
    this.#runs.set(record.target, run)
    this.#sources.addDownload(record.fileId, download.source)
    let holding = false
    const hold = (): void => {
      if (holding) return
      holding = true
      this.#hooks.holding(record)
    }
    if (download.progress().piecesDone > 0) hold()
    download.on('piece', (piece) => {
      hold()
      this.#hooks.verified(record, piece)
    })
    download.run().then(
      (how) => this.#finish(run, how === 'stopped' ? 'stopped' : undefined),
      (err: unknown) => this.#finish(run, err),
    )
  }

  /** `err`: undefined when completed, 'stopped' when stopped, else why it failed. */
  async #finish (run: Run, err: unknown): Promise<void> {
    const { record, download } = run
    try {
      if (err === 'stopped' || run.stopped) return // paused: stays 'running' on disk, resumed later
      const p = download.progress()
      const final = { piecesDone: p.piecesDone, bytesDone: p.bytesDone, peers: contributionsOf(p) }
      if (err === undefined) {
        await this.#records.update(record, { state: 'completed', finishedAt: Date.now(), final })
        await this.#hooks.completed(record).catch((e: unknown) => log.warn('could not register the finished download as a share', { target: record.target, error: e as Error }))
      } else {
        const e = toPeershareError(err)
        if (e.code === 'INTERNAL') log.error('download failed', { target: record.target, error: err as Error })
        await this.#records.update(record, { state: 'failed', finishedAt: Date.now(), final, error: { code: e.code, message: e.message } })
      }
      this.emit('finished', infoOfRecord(record))
    } catch (saveErr) {
      log.warn('could not record the end of a download', { target: record.target, error: saveErr as Error })
    } finally {
      // only now: `wait` returns once a completed download is also a registered share
      if (this.#runs.get(record.target) === run) this.#runs.delete(record.target)
      this.#sources.removeDownload(record.fileId, download.source)
      this.#ended.emit('ended')
    }
  }

  async #stop (run: Run): Promise<void> {
    if (run.stopped || this.#runs.get(run.record.target) !== run) return
    run.stopped = true // first: #finish sees a stop, not a failure
    this.#runs.delete(run.record.target)
    this.#sources.removeDownload(run.record.fileId, run.download.source)
    await run.download.stop()
    this.#ended.emit('ended')
  }
}

function contributionsOf (p: DownloadProgress): PeerContribution[] {
  return p.peers.filter((x) => x.pieces > 0 || x.connected).map((x) => ({ addr: x.addr, userId: x.userId, pieces: x.pieces, connected: x.connected }))
}

function infoOf (run: Run): DownloadInfo {
  const { record } = run
  const p = run.download.progress()
  return {
    groupId: record.groupId,
    file: record.meta.name,
    target: record.target,
    state: p.state === 'waiting' ? 'waiting' : 'running', // 'verifying' (the final hash) is still running
    piecesDone: p.piecesDone,
    pieces: pieceCount(record.meta.size, record.meta.pieceBytes),
    bytesDone: p.bytesDone,
    bytes: record.meta.size,
    speedBps: Math.round(p.speedBps),
    etaS: p.etaS === null || !Number.isFinite(p.etaS) ? null : Math.ceil(p.etaS),
    peers: contributionsOf(p),
  }
}

function infoOfRecord (record: DownloadRecord): DownloadInfo {
  const pieces = pieceCount(record.meta.size, record.meta.pieceBytes)
  const done = record.state === 'completed'
  return {
    groupId: record.groupId,
    file: record.meta.name,
    target: record.target,
    // a 'running' record without a run: paused (logged out) until its user logs in again
    state: record.state === 'running' ? 'waiting' : record.state,
    piecesDone: record.final?.piecesDone ?? (done ? pieces : 0),
    pieces,
    bytesDone: record.final?.bytesDone ?? (done ? record.meta.size : 0),
    bytes: record.meta.size,
    speedBps: 0,
    etaS: null,
    peers: record.final?.peers ?? [],
    ...(record.error === undefined ? {} : { error: record.error }),
  }
}
