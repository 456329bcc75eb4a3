// The etcd store: the Store contract against a real 1-member etcd (a fresh key prefix per test),
// then what only several trackers on one cluster can show: propagation between two stores, races
// through two stores, a member killed mid-stream, quorum lost and regained, a dead tracker's presence.

import { after } from 'node:test'
import { randomBytes } from 'node:crypto'
import { openEtcdStore } from '../../src/store/etcd.ts'
import type { EtcdStore } from '../../src/store/etcd.ts'
import { startEtcdCluster } from '../helpers/etcd.ts'
import type { EtcdCluster } from '../helpers/etcd.ts'
import { storeContract } from './contract.ts'

// one cluster for every contract test: starting etcd takes ~1 s, a prefix is free
const cleanups: Array<() => Promise<void> | void> = []
after(async () => {
  for (const fn of cleanups.reverse()) await fn()
})
let shared: Promise<EtcdCluster> | undefined
function sharedCluster (): Promise<EtcdCluster> {
  shared ??= startEtcdCluster({ after: (fn) => { cleanups.push(fn) } }, { members: 1 })
  return shared
}

const freshPrefix = (): string => `/peershare-test/${randomBytes(6).toString('hex')}`

storeContract('etcd', async () => {
  const cluster = await sharedCluster()
  const prefix = freshPrefix()
  const opened: EtcdStore[] = [await openEtcdStore({ endpoints: cluster.endpoints, prefix })]
  return {
    store: opened[0] as EtcdStore,
    reopen: async () => {
      const store = await openEtcdStore({ endpoints: cluster.endpoints, prefix })
      opened.push(store)
      return store
    },
    cleanup: async () => {
      for (const s of opened) await s.close()
    },
  }
})
