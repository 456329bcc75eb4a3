// --store parsing: etcd endpoints with an optional key prefix (so trackers of independent
// deployments, or tests sharing one etcd, do not see each other's data).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseStoreChoice } from '../../src/tracker/main.ts'

test('etcd store URLs: endpoints, optional prefix', () => {
  assert.deepEqual(parseStoreChoice('sqlite'), { kind: 'sqlite' })
  assert.deepEqual(parseStoreChoice('etcd://127.0.0.1:2379'), { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'] })
  assert.deepEqual(parseStoreChoice('etcd://a:1,b:2/t1'), { kind: 'etcd', endpoints: ['http://a:1', 'http://b:2'], prefix: '/t1' })
  assert.deepEqual(parseStoreChoice('etcd://a:1/team-a/v1/'), { kind: 'etcd', endpoints: ['http://a:1'], prefix: '/team-a/v1' })
})

test('bad etcd prefixes are refused with the form to use', () => {
  for (const bad of ['etcd://a:1/', 'etcd://a:1/x y', 'etcd://a:1/a//b', 'etcd://a:1/' + 'p'.repeat(200)]) {
    assert.throws(() => parseStoreChoice(bad), /bad etcd key prefix .* in --store/, bad)
  }
  assert.throws(() => parseStoreChoice('etcd://a:1,/p'), /bad etcd endpoint '' in --store/)
})
