// Shared set-up of the multi-tracker e2e tests: one real etcd member, `count` real trackers over it
// (a key prefix of their own, so tests never see each other's data), and trackers files that list
// the same trackers in another order (clients whose first tracker differs).

import { randomBytes } from 'node:crypto'
import type { TestContext } from 'node:test'
import { startEtcdCluster } from '../helpers/etcd.ts'
import type { EtcdCluster } from '../helpers/etcd.ts'
import { startTrackers, writeTrackersFile } from '../helpers/tracker.ts'
import type { StartedTracker } from '../helpers/tracker.ts'

export interface EtcdTrackers {
  etcd: EtcdCluster
  /** The --store value every tracker was given. */
  store: string
  trackers: StartedTracker[]
  /** A trackers file listing the trackers in this order of their indexes (0-based). */
  fileFor (order: number[]): Promise<string>
}

export async function startEtcdTrackers (t: TestContext, count: number): Promise<EtcdTrackers> {
  const etcd = await startEtcdCluster(t, { members: 1 })
  const store = `etcd://${etcd.endpoints.map((u) => new URL(u).host).join(',')}/e2e-${randomBytes(4).toString('hex')}`
  const trackers = await startTrackers(t, count, { store })
  return {
    etcd,
    store,
    trackers,
    fileFor: (order) => writeTrackersFile(t, order.map((i) => ({ host: trackers[i]!.host, port: trackers[i]!.port }))),
  }
}

export function addressOf (tr: StartedTracker): string {
  return `${tr.host}:${tr.port}`
}
