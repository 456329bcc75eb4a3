// The reads every Store answers from its in-memory replica (memory-model.ts), written once: the
// SQLite and etcd stores differ in how they write and keep the replica current, not in how they read.
// A subclass says where its replica is and whether it is closing.

import { PeershareError } from '../common/errors.ts'
import type { MemoryModel } from './memory-model.ts'
import type {
  CallOptions, GroupAccess, GroupRecord, GroupSummary, JoinRequest, SessionRecord, StoredFile, UserRecord,
} from './store.ts'

export abstract class ReplicaReads {
  /** The replica to read (etcd rebuilds it after a resync, so it is asked for each time). */
  protected abstract replica (): MemoryModel
  protected abstract isClosing (): boolean

  /** Refuses calls whose caller gave up, and calls on a closed store. */
  protected enter (opts: CallOptions | undefined): void {
    opts?.signal?.throwIfAborted()
    if (this.isClosing()) throw new PeershareError('STORE_UNAVAILABLE', 'the tracker store is closed')
  }

  async getUser (userId: string, opts?: CallOptions): Promise<UserRecord | undefined> {
    this.enter(opts)
    return this.replica().getUser(userId)
  }

  async getSession (tokenHash: string, opts?: CallOptions): Promise<SessionRecord | undefined> {
    this.enter(opts)
    return this.replica().getSession(tokenHash)
  }

  async getGroup (groupId: string, opts?: CallOptions): Promise<GroupRecord | undefined> {
    this.enter(opts)
    return this.replica().getGroup(groupId)
  }

  async groupAccess (groupId: string, userId: string, opts?: CallOptions): Promise<GroupAccess | undefined> {
    this.enter(opts)
    return this.replica().groupAccess(groupId, userId)
  }

  async listGroups (opts?: CallOptions): Promise<readonly GroupSummary[]> {
    this.enter(opts)
    return this.replica().listGroups()
  }

  async membershipsOf (userId: string, opts?: CallOptions): Promise<{ member: string[], pending: string[] }> {
    this.enter(opts)
    return this.replica().membershipsOf(userId)
  }

  async listRequests (groupId: string, opts?: CallOptions): Promise<readonly JoinRequest[]> {
    this.enter(opts)
    return this.replica().listRequests(groupId)
  }

  async listFiles (groupId: string, opts?: CallOptions): Promise<readonly StoredFile[]> {
    this.enter(opts)
    return this.replica().listFiles(groupId)
  }

  async getFile (groupId: string, fileName: string, opts?: CallOptions): Promise<StoredFile | undefined> {
    this.enter(opts)
    return this.replica().getFile(groupId, fileName)
  }
}
