// The client's peer server and what it serves: starts peer/server.ts on the client's peer address
// with the SourceTable as its findSource, keeps the served shares equal to a list of share records
// (the logged-in user's), and closes connections for files no longer served. Which records and
// downloads count is core.ts's decision.

import { PeershareError } from '../common/errors.ts'
import { startPeerServer } from '../peer/server.ts'
import type { PeerServer, PeerServerOptions, PieceSource } from '../peer/server.ts'
import type { ShareRecord } from './shares.ts'
import { SourceTable } from './sources.ts'
import type { ShareSpec } from './sources.ts'

export class Serving {
  readonly #server: PeerServer
  readonly #sources: SourceTable

  private constructor (server: PeerServer, sources: SourceTable) {
    this.#server = server
    this.#sources = sources
  }

  /** Listens on host:port (UNAVAILABLE when taken). `onShareChanged`: a served file changed on disk. */
  static async start (opts: { host: string, port: number, uploadLimit: number, onShareChanged: (spec: ShareSpec) => void,
    /** TLS and tickets (peer/server.ts); absent only with --insecure-plaintext. */
    security: PeerServerOptions['security'] }): Promise<Serving> {
    const sources = new SourceTable(opts.onShareChanged)
    try {
      const server = await startPeerServer({
        host: opts.host,
        port: opts.port,
        uploadLimit: opts.uploadLimit,
        findSource: (id) => sources.find(id),
        ...(opts.security === undefined ? {} : { security: opts.security }),
      })
      return new Serving(server, sources)
    } catch (err) {
      const errno = (err as { cause?: NodeJS.ErrnoException }).cause?.code
      if (errno === 'EADDRINUSE') {
        throw new PeershareError('UNAVAILABLE', `${opts.host}:${opts.port} is already in use: pick another port`, { cause: err })
      }
      throw err
    }
  }

  /** The table downloads register their verified pieces in. */
  get sources (): SourceTable {
    return this.#sources
  }

  /** Serves exactly these shares: others stop, and their connections are closed. */
  serveShares (records: readonly ShareRecord[]): void {
    const wanted = new Set(records.map((r) => r.fileId))
    for (const id of this.#sources.shareIds()) {
      if (wanted.has(id)) continue
      this.#sources.removeShare(id)
      this.#server.dropFile(id)
    }
    for (const r of records) this.#sources.addShare({ fileId: r.fileId, path: r.path, meta: r.meta, mtimeMs: r.mtimeMs })
  }

  /** Tells the peers connected for that file that we have one more piece. */
  notifyHave (fileId: string, piece: number): void {
    this.#server.notifyHave(fileId, piece)
  }

  /** Closes every connection serving that file (it stopped being served). */
  dropFile (fileId: string): void {
    this.#server.dropFile(fileId)
  }

  find (fileId: string): PieceSource | undefined {
    return this.#sources.find(fileId)
  }

  async close (): Promise<void> {
    await this.#server.close()
    await this.#sources.close()
  }
}
