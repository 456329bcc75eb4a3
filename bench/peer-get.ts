// Child of bench/download.ts: one downloader. Downloads the file of --meta from --peers into --target
// and prints {"seconds","transferS","cpuUserS","cpuSystemS","maxRssBytes","peers"} — the time runs from
// opening the .part to the final name (fsync and whole-file hash included); transferS up to the last
// piece verified (the rest is the wait for the whole-file hash, the fsync and the rename). With --tls-id DIR, --ticket B64 and
// --fingerprints F1,F2,... it dials each peer over TLS 1.3 pinned to its fingerprint and shows the ticket.

import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { decodeFileMeta, fileId } from '../src/protocol/file-meta.ts'
import { Download } from '../src/peer/download.ts'
import type { PeerDial } from '../src/peer/download.ts'
import { loadOrCreateIdentity } from '../src/security/identity.ts'
import { connect } from '../src/security/transport.ts'
import { capYoungGeneration } from '../src/common/young-gen.ts'

const { values } = parseArgs({
  options: {
    meta: { type: 'string' }, target: { type: 'string' }, peers: { type: 'string' },
    'tls-id': { type: 'string' }, ticket: { type: 'string' }, fingerprints: { type: 'string' },
  },
})
if (values.meta === undefined || values.target === undefined || values.peers === undefined) {
  throw new Error('usage: peer-get.ts --meta META.json --target PATH --peers HOST:PORT,...')
}
const meta = decodeFileMeta(JSON.parse(await readFile(values.meta, 'utf8')))
const fingerprints = values.fingerprints?.split(',') ?? []
const ticket = values.ticket === undefined ? undefined : Buffer.from(values.ticket, 'base64')
const peers = values.peers.split(',').map((peerAddr, i) => ({
  peerAddr,
  userId: `sharer${i + 1}`,
  ...(fingerprints[i] === undefined ? {} : { fingerprint: fingerprints[i] }),
  ...(ticket === undefined ? {} : { ticket }),
}))
const identity = values['tls-id'] === undefined ? undefined : await loadOrCreateIdentity(values['tls-id'])
const dial: PeerDial | undefined = identity === undefined
  ? undefined
  : async (host, port, o) => (await connect(host, port, {
    ...(o.signal === undefined ? {} : { signal: o.signal }),
    ...(o.onread === undefined ? {} : { onread: o.onread }),
    tls: { identity, trust: { kind: 'pin', fingerprint: o.fingerprint! } },
  })).socket
capYoungGeneration() // as the client process does (src/cli/main.ts)
const cpuBefore = process.cpuUsage()
const start = performance.now()
const d = await Download.open({ meta, fileId: fileId(meta), groupId: 'bench', target: values.target, locate: async () => peers, ...(dial === undefined ? {} : { dial }) })
let transferS = 0
d.on('state', (state) => { if (state === 'verifying') transferS = (performance.now() - start) / 1000 })
await d.run()
const seconds = (performance.now() - start) / 1000
const cpu = process.cpuUsage(cpuBefore) // the download's CPU, without start-up
const r = process.resourceUsage()
process.stdout.write(JSON.stringify({
  seconds,
  transferS,
  cpuUserS: cpu.user / 1e6,
  cpuSystemS: cpu.system / 1e6,
  maxRssBytes: r.maxRSS * 1024,
  peers: d.progress().peers.map((p) => ({ addr: p.addr, pieces: p.pieces })),
}) + '\n')
