// Child of bench/download.ts: one sharer. Serves the file described by --meta (written by the bench,
// so no process hashes it again) from --file on a loopback port; prints {"port"} when ready and, when
// stdin closes, {"cpuUserS","cpuSystemS","maxRssBytes","servedBytes"} and exits. With --tls-id DIR and
// --ticket-key HEX it serves over TLS 1.3 with the identity in DIR, only against tickets that key signed
// (as a client does by default), and prints its certificate fingerprint with the port.

import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { decodeFileMeta, fileId } from '../src/protocol/file-meta.ts'
import { startPeerServer } from '../src/peer/server.ts'
import type { PieceSource } from '../src/peer/server.ts'
import { ShareFile } from '../src/peer/storage.ts'
import { loadOrCreateIdentity } from '../src/security/identity.ts'
import { ticketPublicKeyFromRaw, trustedTicketKeys } from '../src/security/tickets.ts'

const { values } = parseArgs({
  options: { file: { type: 'string' }, meta: { type: 'string' }, mtime: { type: 'string' }, 'upload-limit': { type: 'string', default: '0' },
    'tls-id': { type: 'string' }, 'ticket-key': { type: 'string' } },
})
if (values.file === undefined || values.meta === undefined || values.mtime === undefined) {
  throw new Error('usage: peer-share.ts --file PATH --meta META.json --mtime MS [--upload-limit BYTES_PER_S]')
}
const meta = decodeFileMeta(JSON.parse(await readFile(values.meta, 'utf8')))
const id = fileId(meta)
const share = await ShareFile.open(values.file, meta, Number(values.mtime))
let servedBytes = 0
const source: PieceSource = {
  meta,
  have: () => share.have(),
  read: async (p, o, l) => {
    servedBytes += l
    return await share.read(p, o, l)
  },
}
const identity = values['tls-id'] === undefined ? undefined : await loadOrCreateIdentity(values['tls-id'])
const keys = trustedTicketKeys(values['ticket-key'] === undefined ? [] : [ticketPublicKeyFromRaw(values['ticket-key'])])
const server = await startPeerServer({
  host: '127.0.0.1', port: 0, findSource: (x) => x === id ? source : undefined, uploadLimit: Number(values['upload-limit']),
  ...(identity === undefined ? {} : { security: { identity, trustedKeys: () => keys } }),
})
const cpuReady = process.cpuUsage() // serving CPU only: start-up (type stripping, imports) is not the server's cost
process.stdout.write(JSON.stringify({ port: server.address.port, fingerprint: identity?.fingerprint }) + '\n')
process.stdin.resume()
process.stdin.on('end', () => {
  const cpu = process.cpuUsage(cpuReady)
  const r = process.resourceUsage()
  process.stdout.write(JSON.stringify({ cpuUserS: cpu.user / 1e6, cpuSystemS: cpu.system / 1e6, maxRssBytes: r.maxRSS * 1024, servedBytes }) + '\n')
  void server.close().then(() => share.close()).then(() => process.exit(0))
})
