#!/usr/bin/env node
// Entry point of the `peershare` command. The sources are TypeScript run directly by Node 24's type
// stripping; an older node gets a clear message instead of a syntax error.
const major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  process.stderr.write(`peershare needs Node.js 24 or later (this is ${process.version}).\n` +
    'Run it through npm from the project folder, which uses the project\'s own Node 24: npx peershare ...\n')
  process.exit(1)
}
await import('../src/cli/main.ts')
