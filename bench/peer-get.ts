// Child of bench/download.ts: one downloader. Downloads the file of --meta from --peers into --target
// and prints {"seconds","cpuUserS","cpuSystemS","maxRssBytes","peers"} — the time runs from opening the
// .part to the final name (fsync and whole-file hash included).

import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { decodeFileMeta, fileId } from '../src/protocol/file-meta.ts'
import { Download } from '../src/peer/download.ts'

const { values } = parseArgs({ options: { meta: { type: 'string' }, target: { type: 'string' }, peers: { type: 'string' } } })
if (values.meta === undefined || values.target === undefined || values.peers === undefined) {
  throw new Error('usage: peer-get.ts --meta META.json --target PATH --peers HOST:PORT,...')
}
const meta = decodeFileMeta(JSON.parse(await readFile(values.meta, 'utf8')))
const peers = values.peers.split(',').map((peerAddr, i) => ({ peerAddr, userId: `sharer${i + 1}` }))
const cpuBefore = process.cpuUsage()
const start = performance.now()
const d = await Download.open({ meta, fileId: fileId(meta), groupId: 'bench', target: values.target, locate: async () => peers })
await d.run()
const seconds = (performance.now() - start) / 1000
const cpu = process.cpuUsage(cpuBefore) // the download's CPU, without start-up
const r = process.resourceUsage()
process.stdout.write(JSON.stringify({
  seconds,
  cpuUserS: cpu.user / 1e6,
  cpuSystemS: cpu.system / 1e6,
  maxRssBytes: r.maxRSS * 1024,
  peers: d.progress().peers.map((p) => ({ addr: p.addr, pieces: p.pieces })),
}) + '\n')
