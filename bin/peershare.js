#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576 node --max-semi-space-size=8
// Entry point of the `peershare` command. The sources are TypeScript run directly by Node 24's type
// stripping; an older node gets a clear message instead of a syntax error.
// The glibc setting (read only at process start, hence here): allocations of 1 MiB and more get
// their own mapping, returned when freed. Without it glibc raises that threshold after the first big
// free and keeps each scrypt hash's 16 MiB (one per libuv thread: ~66 MB) in its arenas for good.
// --max-semi-space-size=8: a young generation of at most 16 MiB (src/common/young-gen.ts says why).
// Also read only at start: young-gen.ts's growth factor, set between turns, could not stop a burst
// (2,000 clients disconnecting at once) from doubling it to 128 MiB within one turn: 300 MB of RSS.
import { enableCompileCache } from 'node:module'

const major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  process.stderr.write(`peershare needs Node.js 24 or later (this is ${process.version}).\n` +
    'Run it through npm from the project folder, which uses the project\'s own Node 24: npx peershare ...\n')
  process.exit(1)
}
// Node's compile cache (in the system's temporary directory; checked against each source's hash)
// keeps the stripped TypeScript and V8's code: with it, a process does not load the type stripper at
// all. Measured: 35 MB less RSS for a client, 10 MB less per download worker, and a faster start.
// Set before the first import of our sources (it applies to modules loaded after it), and exported
// to the environment so worker threads use it too.
const cache = enableCompileCache()
if (cache.directory !== undefined) process.env.NODE_COMPILE_CACHE = cache.directory
await import('../src/cli/main.ts')
