// The control connection survives its tracker: killed -9 and restarted, the client reconnects,
// resumes its session, and commands (even one typed while the tracker was down) succeed without login.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startClient } from '../helpers/client.ts'
import { startTracker } from '../helpers/tracker.ts'

test('session kept when the tracker is killed -9 and restarted', async (t) => {
  const tracker = await startTracker(t)
  const c = await startClient(t, { infoFile: tracker.infoFile })
  await c.ok('create_user kim pw')
  await c.ok('login kim pw')
  await c.ok('create_group before')

  await tracker.kill('SIGKILL')
  await c.waitEvent('disconnected')
  // typed while no tracker is up: waits for the reconnection instead of failing
  const pending = c.run('create_group during')
  await tracker.restart()
  const switched = await c.waitEvent('switched')
  assert.equal(switched.tracker, `127.0.0.1:${tracker.port}`)
  assert.equal(switched.resumed, true)
  assert.deepEqual(await pending, { command: 'create_group', ok: true, result: { groupId: 'during' } })
  const groups = (await c.ok('list_groups')).groups.map((g: { groupId: string }) => g.groupId).sort()
  assert.deepEqual(groups, ['before', 'during'])
  assert.equal(await c.close(), 0)
})
