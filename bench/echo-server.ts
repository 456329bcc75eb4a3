// The machine's own limit for the tracker bench: a Node process that does only what every tracker
// request costs at minimum (framing, JSON decode, JSON encode, one write) and nothing else.
//   node bench/echo-server.ts [--tls DATA_DIR]  → prints "echo listening on 127.0.0.1:<port>"
// With --tls it speaks TLS 1.3 like the tracker (identity kept in DATA_DIR), so the TLS runs have a
// baseline that pays the same encryption.

import { parseArgs } from 'node:util'
import type { Socket } from 'node:net'
import { FrameDecoder, encodeFrame } from '../src/protocol/frame.ts'
import { loadOrCreateIdentity } from '../src/security/identity.ts'
import { listen } from '../src/security/transport.ts'

const { values } = parseArgs({ options: { tls: { type: 'string' } } })

function serve (socket: Socket): void {
  const decoder = new FrameDecoder(64 * 1024)
  socket.on('error', () => socket.destroy())
  socket.on('data', (chunk: Buffer) => {
    for (const body of decoder.push(chunk)) {
      const req = JSON.parse(body.toString('utf8'))
      socket.write(encodeFrame(Buffer.from(JSON.stringify({ id: req.id, ok: true, result: {} }))))
    }
  })
}

const listener = values.tls === undefined
  ? await listen({ host: '127.0.0.1', port: 0, insecurePlaintext: true, onConnection: serve })
  : await listen({ host: '127.0.0.1', port: 0, tls: { identity: await loadOrCreateIdentity(values.tls) }, onConnection: serve })
process.stdout.write(`echo listening on 127.0.0.1:${listener.address.port}\n`)
process.on('SIGTERM', () => process.exit(0))
