// Child of bench/download.ts: one sharer. Serves the file described by --meta (written by the bench,
// so no process hashes it again) from --file on a loopback port; prints {"port"} when ready and, when
// stdin closes, {"cpuUserS","cpuSystemS","maxRssBytes","readBytes","sentBytes"} and exits. With --tls-id DIR and
// --ticket-key HEX it serves over TLS 1.3 with the identity in DIR, only against tickets that key signed
// (as a client does by default), and prints its certificate fingerprint with the port.
// --upload-limit takes a rate as the client's option does (src/cli/rate.ts: 20MB, 1MB, 0 or none).
// Of what it served it reports readBytes, what the server read from the file (server.ts reads the
// blocks of a piece queued together in one read, and each block once), and sentBytes, what
// this process wrote to its sockets (Linux's /proc/self/io wchar, framing and TLS included; absent
// elsewhere).

import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { parseRate } from '../src/cli/rate.ts'
import { decodeFileMeta, fileId } from '../src/protocol/file-meta.ts'
import { startPeerServer } from '../src/peer/server.ts'
import type { PieceSource } from '../src/peer/server.ts'
import { ShareFile } from '../src/peer/storage.ts'
import { loadOrCreateIdentity } from '../src/security/identity.ts'
import { ticketPublicKeyFromRaw, trustedTicketKeys } from '../src/security/tickets.ts'
import { capYoungGeneration } from '../src/common/young-gen.ts'

const { values } = parseArgs({
  options: { file: { type: 'string' }, meta: { type: 'string' }, mtime: { type: 'string' }, 'upload-limit': { type: 'string', default: '0' },
    'tls-id': { type: 'string' }, 'ticket-key': { type: 'string' } },
})
if (values.file === undefined || values.meta === undefined || values.mtime === undefined) {
  throw new Error('usage: peer-share.ts --file PATH --meta META.json --mtime MS [--upload-limit RATE]')
}
const uploadLimit = parseRate(values['upload-limit'])
if (uploadLimit === undefined) throw new Error(`--upload-limit ${values['upload-limit']}: not a rate (e.g. 20MB, 500KB, 0 or none)`)
const meta = decodeFileMeta(JSON.parse(await readFile(values.meta, 'utf8')))
const id = fileId(meta)
const share = await ShareFile.open(values.file, meta, Number(values.mtime))
let readBytes = 0
const source: PieceSource = {
  meta,
  have: () => share.have(),
  read: async (p, o, l) => {
    readBytes += l
    return await share.read(p, o, l)
  },
}
const identity = values['tls-id'] === undefined ? undefined : await loadOrCreateIdentity(values['tls-id'])
const keys = trustedTicketKeys(values['ticket-key'] === undefined ? [] : [ticketPublicKeyFromRaw(values['ticket-key'])])
const server = await startPeerServer({
  host: '127.0.0.1', port: 0, findSource: (x) => x === id ? source : undefined, uploadLimit,
  ...(identity === undefined ? {} : { security: { identity, trustedKeys: () => keys } }),
})
capYoungGeneration() // as the client process does (src/cli/main.ts)
const cpuReady = process.cpuUsage() // serving CPU only: start-up (type stripping, imports) is not the server's cost
const writtenReady = written()
process.stdout.write(JSON.stringify({ port: server.address.port, fingerprint: identity?.fingerprint }) + '\n')
process.stdin.resume()
process.stdin.on('end', () => {
  const cpu = process.cpuUsage(cpuReady)
  const now = written()
  const sent = now === undefined || writtenReady === undefined ? undefined : now - writtenReady
  const r = process.resourceUsage()
  process.stdout.write(JSON.stringify({ cpuUserS: cpu.user / 1e6, cpuSystemS: cpu.system / 1e6, maxRssBytes: r.maxRSS * 1024, readBytes, sentBytes: sent }) + '\n')
  void server.close().then(() => share.close()).then(() => process.exit(0))
})

/** Bytes this process has written with write(2) and kin, sockets included; undefined off Linux. */
function written (): number | undefined {
  try {
    const m = /^wchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))
    return m === null ? undefined : Number(m[1])
  } catch {
    return undefined
  }
}
