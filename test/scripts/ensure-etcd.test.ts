// The pure parts of the etcd provisioning step: finding binaries on a PATH and reading etcd's version.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, writeFile } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { findOnPath, parseEtcdVersion } from '../../scripts/ensure-etcd.ts'
import { tmpDir } from '../helpers/tmp.ts'

test('parseEtcdVersion reads the version line of etcd --version', () => {
  const cases: Array<[string, [number, number, number] | undefined]> = [
    ['etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\n', [3, 4, 23]],
    ['etcd Version: 3.5.17\n', [3, 5, 17]],
    ['etcd Version: unknown\n', undefined],
    ['', undefined],
  ]
  for (const [text, want] of cases) assert.deepEqual(parseEtcdVersion(text), want, JSON.stringify(text))
})

test('findOnPath returns the first executable of that name and skips non-executable files', async (t) => {
  const a = await tmpDir(t)
  const b = await tmpDir(t)
  await writeFile(join(a, 'etcd'), 'not executable')
  await writeFile(join(b, 'etcd'), '#!/bin/sh\n')
  await chmod(join(b, 'etcd'), 0o755)
  assert.equal(findOnPath('etcd', ['', a, b].join(delimiter)), join(b, 'etcd'))
  assert.equal(findOnPath('etcdctl', [a, b].join(delimiter)), undefined)
  assert.equal(findOnPath('etcd', ''), undefined)
})
