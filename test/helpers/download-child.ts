// A download in a process of its own, for kill -9 tests: argv = meta JSON path, target, peer address.
// Prints one JSON line {"piecesDone"} per verified piece, so the parent can kill it mid-download.
import { readFile } from 'node:fs/promises'
import { decodeFileMeta, fileId } from '../../src/protocol/file-meta.ts'
import { Download } from '../../src/peer/download.ts'

const [metaPath, target, peerAddr] = process.argv.slice(2)
if (metaPath === undefined || target === undefined || peerAddr === undefined) throw new Error('usage: download-child.ts META TARGET ADDR')
const meta = decodeFileMeta(JSON.parse(await readFile(metaPath, 'utf8')))
const d = await Download.open({ meta, fileId: fileId(meta), groupId: 'g1', target, locate: async () => [{ peerAddr, userId: 'u1' }] })
d.on('piece', () => process.stdout.write(JSON.stringify({ piecesDone: d.progress().piecesDone }) + '\n'))
await d.run()
