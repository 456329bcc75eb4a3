// The machine's own limit for the tracker bench: a Node process that does only what every tracker
// request costs at minimum (framing, JSON decode, JSON encode, one write) and nothing else.
//   node bench/echo-server.ts  → prints "echo listening on 127.0.0.1:<port>"

import { createServer } from 'node:net'
import { FrameDecoder, encodeFrame } from '../src/protocol/frame.ts'

const server = createServer({ noDelay: true }, (socket) => {
  const decoder = new FrameDecoder(64 * 1024)
  socket.on('error', () => socket.destroy())
  socket.on('data', (chunk: Buffer) => {
    for (const body of decoder.push(chunk)) {
      const req = JSON.parse(body.toString('utf8'))
      socket.write(encodeFrame(Buffer.from(JSON.stringify({ id: req.id, ok: true, result: {} }))))
    }
  })
})
server.listen(0, '127.0.0.1', () => {
  const addr = server.address()
  if (addr !== null && typeof addr === 'object') process.stdout.write(`echo listening on 127.0.0.1:${addr.port}\n`)
})
process.on('SIGTERM', () => process.exit(0))
