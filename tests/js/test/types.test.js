// `basalt schema types` against the real client's types: the generated `Database` type is
// handed to `createClient<Database>` and TypeScript must accept right queries and refuse
// unknown tables, unknown columns and wrongly typed values, as with `supabase gen types`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { basaltBin, JS_ROOT, SCHEMA_PATH } from './helpers/server.js';

const USE = `
import { createClient } from '@supabase/supabase-js'
import type { Database, Tables, TablesInsert } from './database.types'

const db = createClient<Database>('http://localhost:54321', 'anon-key')

export async function right() {
  const { data } = await db.from('todos').select('id, title, done, lists(name)').eq('status', 'open').order('rank')
  const title: string | undefined = data?.[0]?.title
  const done: boolean | null | undefined = data?.[0]?.done
  const listName: string | undefined = data?.[0]?.lists?.name
  await db.from('todos').insert({ title: 'written', meta: { any: ['json', 1] }, tags: ['a'] })
  await db.from('items').upsert({ id: 1, sku: 'a', shop: 'b' })
  await db.from('todos').update({ done: true }).eq('id', 'x')
  const row: Tables<'lists'> = { id: 'x', name: 'n', created_at: 't', updated_at: 't' }
  const insert: TablesInsert<'lists'> = { name: 'only the required column' }
  return [title, done, listName, row, insert]
}

export async function wrong() {
  // @ts-expect-error: no such table
  await db.from('nope').select()
  // @ts-expect-error: title is text and required
  await db.from('todos').insert({ title: 1 })
  // @ts-expect-error: title is required on insert
  await db.from('todos').insert({ done: true })
  // @ts-expect-error: status is one of 'open' | 'closed'
  await db.from('todos').insert({ title: 't', status: 'archived' })
  const { data } = await db.from('todos').select('id').single()
  // @ts-expect-error: only id was selected
  return data?.title
}
`;

test('the generated types type supabase-js queries', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basalt-types-'));
  try {
    const types = execFileSync(basaltBin(), ['schema', 'types', '--schema', SCHEMA_PATH], { encoding: 'utf8' });
    assert.match(types, /export type Database = \{/);
    fs.writeFileSync(path.join(dir, 'database.types.ts'), types);
    fs.writeFileSync(path.join(dir, 'use.ts'), USE);
    fs.symlinkSync(path.join(JS_ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    const run = spawnSync(
      process.execPath,
      [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--skipLibCheck', 'use.ts'],
      { cwd: dir, encoding: 'utf8' },
    );
    assert.equal(run.status, 0, `tsc:\n${run.stdout}${run.stderr}\n--- types ---\n${types}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
