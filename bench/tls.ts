// node bench/tls.ts [-- --mib 1024 --seconds 3]
// The cost of TLS 1.3 on this machine, through security/transport.ts itself: throughput of one
// connection over loopback (TLS with AES-256-GCM, the default suite, and AES-128-GCM, vs plain TCP)
// for 16 KiB and 128 KiB writes, and full mutual-TLS handshakes/s (one at a time and 16 in flight).
// The sending / dialling side runs in a worker thread, so each end has a core as in real use.

import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import type net from 'node:net'
import tls from 'node:tls'
import { loadOrCreateIdentity } from '../src/security/identity.ts'
import type { Identity } from '../src/security/identity.ts'
import { clientTlsOptions } from '../src/security/tls.ts'
import { connect, listen } from '../src/security/transport.ts'
import type { ConnectOptions } from '../src/security/transport.ts'

type Job =
  | { role: 'send', port: number, tls: boolean, cipher?: string, identity: Identity, totalBytes: number, writeBytes: number }
  | { role: 'handshake', port: number, identity: Identity, seconds: number, inFlight: number }

if (isMainThread) await main()
else await worker(workerData as Job)

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { mib: { type: 'string', default: '1024' }, seconds: { type: 'string', default: '3' } } })
  const totalBytes = Number(values.mib) * 1024 * 1024
  const seconds = Number(values.seconds)
  const dir = await mkdtemp(join(tmpdir(), 'peershare-bench-tls-'))
  try {
    const [server, client] = await Promise.all([loadOrCreateIdentity(join(dir, 's')), loadOrCreateIdentity(join(dir, 'c'))])
    console.log(`one connection over loopback, ${values.mib} MiB each (sender in a worker thread)`)
    console.log('mode                     write     MB/s   vs plain')
    for (const writeBytes of [16 * 1024, 128 * 1024]) {
      let plain = 0
      for (const mode of ['plain TCP', 'TLS 1.3 AES-256-GCM', 'TLS 1.3 AES-128-GCM'] as const) {
        const cipher = mode.endsWith('256-GCM') ? 'TLS_AES_256_GCM_SHA384' : mode.endsWith('128-GCM') ? 'TLS_AES_128_GCM_SHA256' : undefined
        const mbps = await throughput(server, client, mode !== 'plain TCP', cipher, totalBytes, writeBytes)
        if (mode === 'plain TCP') plain = mbps
        console.log(`${mode.padEnd(24)} ${String(writeBytes / 1024).padStart(3)} KiB ${mbps.toFixed(0).padStart(8)}   ${(mbps / plain).toFixed(2)}x`)
      }
    }
    console.log(`\nfull TLS 1.3 handshakes (mutual certificates, P-256, X25519), ${seconds} s each`)
    for (const inFlight of [1, 16]) {
      const rate = await handshakes(server, client, seconds, inFlight)
      console.log(`${String(inFlight).padStart(2)} in flight: ${rate.toFixed(0)} handshakes/s (${(1000 / rate * inFlight).toFixed(2)} ms each)`)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Receives `totalBytes` on the main thread; MB/s from the first byte to the last. */
async function throughput (server: Identity, client: Identity, useTls: boolean, cipher: string | undefined,
  totalBytes: number, writeBytes: number): Promise<number> {
  let resolveDone!: (mbps: number) => void
  const done = new Promise<number>((resolve) => { resolveDone = resolve })
  const listener = await listen({
    host: '127.0.0.1',
    port: 0,
    ...(useTls ? { tls: { identity: server } } : { insecurePlaintext: true }),
    onConnection: (socket: net.Socket) => {
      let received = 0
      let start = 0
      socket.on('data', (chunk: Buffer) => {
        if (start === 0) start = performance.now()
        received += chunk.length
        if (received >= totalBytes) resolveDone(received / 1e6 / ((performance.now() - start) / 1000))
      })
      socket.on('error', () => {})
    },
  })
  try {
    const w = new Worker(new URL(import.meta.url), { workerData: { role: 'send', port: listener.address.port, tls: useTls, cipher, identity: client, totalBytes, writeBytes } satisfies Job })
    const mbps = await done
    await once(w, 'exit')
    return mbps
  } finally {
    await listener.close()
  }
}

async function handshakes (server: Identity, client: Identity, seconds: number, inFlight: number): Promise<number> {
  const listener = await listen({ host: '127.0.0.1', port: 0, tls: { identity: server }, onConnection: (s) => { s.on('error', () => {}); s.end() } })
  try {
    const w = new Worker(new URL(import.meta.url), { workerData: { role: 'handshake', port: listener.address.port, identity: client, seconds, inFlight } satisfies Job })
    const [count] = await once(w, 'message') as [number]
    return count / seconds
  } finally {
    await listener.close()
  }
}

async function worker (job: Job): Promise<void> {
  if (job.role === 'send') {
    await send(await openSender(job), job.totalBytes, job.writeBytes)
    return
  }
  const deadline = performance.now() + job.seconds * 1000
  let count = 0
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const { socket } = await connect('127.0.0.1', job.port, { tls: { identity: job.identity, trust: { kind: 'any' } } })
      socket.destroy()
      count++
    }
  }
  await Promise.all(Array.from({ length: job.inFlight }, loop))
  parentPort!.postMessage(count)
}

/** transport.ts for plain TCP and the default suite; the AES-128 row needs the suite named in the ClientHello. */
async function openSender (job: Extract<Job, { role: 'send' }>): Promise<net.Socket> {
  if (!job.tls) return (await connect('127.0.0.1', job.port, { insecurePlaintext: true })).socket
  if (job.cipher === 'TLS_AES_256_GCM_SHA384') return (await connect('127.0.0.1', job.port, { tls: { identity: job.identity, trust: { kind: 'any' } } })).socket
  const socket = tls.connect({ host: '127.0.0.1', port: job.port, ...clientTlsOptions(job.identity), ciphers: job.cipher })
  await once(socket, 'secureConnect')
  if (socket.getCipher().standardName !== job.cipher) throw new Error(`asked for ${job.cipher}, got ${socket.getCipher().standardName}`)
  return socket
}

async function send (socket: net.Socket, totalBytes: number, writeBytes: number): Promise<void> {
  const block = Buffer.alloc(writeBytes, 0x5a)
  for (let sent = 0; sent < totalBytes; sent += writeBytes) {
    if (!socket.write(block)) await once(socket, 'drain')
  }
  socket.end()
  await once(socket, 'close')
}
