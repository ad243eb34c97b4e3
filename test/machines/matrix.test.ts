/**
 * The full (state × event) matrix of each machine against an explicit,
 * hand-written table. A cell is the state `decide()` moves to, `=` when
 * the transition keeps the state, or the refusal: `busy` (409), `invalid`
 * (400), `gone` (final state). Changing a machine means changing a table
 * here, on purpose.
 *
 * Two rows per machine: `quiet` (no readers, no snapshots, no owner) and
 * `held` (one reader, one snapshot): the guards that make DELETE busy or
 * invalid show up as different cells.
 */
import { describe, expect, it } from 'vitest';
import { decide } from '../../machines/decide.ts';
import { MODELS, type ResourceModel } from '../../machines/index.ts';

function parse(table: string): { events: string[]; rows: Map<string, string[]> } {
  const lines = table
    .trim()
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const events = lines[0]!.split('|')[1]!.trim().split(/\s+/);
  const rows = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const [state, cells] = line.split('|').map((s) => s.trim());
    rows.set(state!, cells!.split(/\s+/));
  }
  return { events, rows };
}

/** Sample parameters for events that take them. */
const PARAMS: Record<string, Record<string, unknown>> = {
  EXTEND: { new_size: 2 },
  RESET_STATUS: { status: 'error' },
};

function outcome(model: ResourceModel, state: string, context: Record<string, unknown>, event: string): string {
  const d = decide(model, { state, context }, { type: event, ...PARAMS[event] });
  if (!d.ok) return d.kind;
  return d.to === state && model.index.candidates(state, event).some((c) => c.target === null) ? '=' : d.to;
}

function checkMatrix(model: ResourceModel, context: Record<string, unknown>, table: string) {
  const { events, rows } = parse(table);
  it('covers every state and every event', () => {
    expect([...rows.keys()].sort()).toEqual([...model.states].sort());
    expect([...events].sort()).toEqual(Object.keys(model.events).sort());
  });
  for (const [state, cells] of rows) {
    it(`from ${state}`, () => {
      const actual = Object.fromEntries(events.map((e) => [e, outcome(model, state, context, e)]));
      const expected = Object.fromEntries(events.map((e, i) => [e, cells[i]]));
      expect(actual).toEqual(expected);
    });
  }
}

const VOLUME_QUIET = `
state               | DELETE   FORCE_DELETE EXTEND    RESET_STATUS SNAPSHOT_BEGIN READ_END SNAPSHOT_GONE SCHEDULE            SCHEDULED        SCHEDULE_FAILED BACKEND_CREATED BACKEND_FAILED  EXTENDED  DELETED
creating.db         | busy     deleting     busy      error        busy           invalid  invalid       creating.scheduling busy             busy            busy            busy            busy      busy
creating.scheduling | busy     deleting     busy      error        busy           invalid  invalid       busy                creating.backend error           busy            busy            busy      busy
creating.backend    | busy     deleting     busy      error        busy           invalid  invalid       busy                busy             busy            available       error           busy      busy
available           | deleting deleting     extending error        =              invalid  invalid       invalid             invalid          invalid         invalid         invalid         invalid   invalid
extending           | busy     deleting     busy      error        busy           invalid  invalid       busy                busy             busy            busy            error_extending available busy
deleting            | busy     busy         busy      busy         busy           invalid  invalid       busy                busy             busy            busy            error_deleting  busy      deleted
error               | deleting deleting     invalid   error        invalid        invalid  invalid       invalid             invalid          invalid         invalid         invalid         invalid   invalid
error_extending     | deleting deleting     invalid   error        invalid        invalid  invalid       invalid             invalid          invalid         invalid         invalid         invalid   invalid
error_deleting      | invalid  deleting     invalid   error        invalid        invalid  invalid       invalid             invalid          invalid         invalid         invalid         invalid   invalid
deleted             | gone     gone         gone      gone         gone           gone     gone          gone                gone             gone            gone            gone            gone      gone
`;

const VOLUME_HELD = `
state               | DELETE   FORCE_DELETE EXTEND    RESET_STATUS SNAPSHOT_BEGIN READ_END SNAPSHOT_GONE SCHEDULE            SCHEDULED        SCHEDULE_FAILED BACKEND_CREATED BACKEND_FAILED  EXTENDED  DELETED
creating.db         | busy     invalid      busy      error        busy           =        =             creating.scheduling busy             busy            busy            busy            busy      busy
creating.scheduling | busy     invalid      busy      error        busy           =        =             busy                creating.backend error           busy            busy            busy      busy
creating.backend    | busy     invalid      busy      error        busy           =        =             busy                busy             busy            available       error           busy      busy
available           | invalid  invalid      busy      error        =              =        =             invalid             invalid          invalid         invalid         invalid         invalid   invalid
extending           | busy     invalid      busy      error        busy           =        =             busy                busy             busy            busy            error_extending available busy
deleting            | busy     busy         busy      busy         busy           =        =             busy                busy             busy            busy            error_deleting  busy      deleted
error               | invalid  invalid      invalid   error        invalid        =        =             invalid             invalid          invalid         invalid         invalid         invalid   invalid
error_extending     | invalid  invalid      invalid   error        invalid        =        =             invalid             invalid          invalid         invalid         invalid         invalid   invalid
error_deleting      | invalid  invalid      invalid   error        invalid        =        =             invalid             invalid          invalid         invalid         invalid         invalid   invalid
deleted             | gone     gone         gone      gone         gone           gone     gone          gone                gone             gone            gone            gone            gone      gone
`;

const SNAPSHOT_QUIET = `
state          | DELETE   FORCE_DELETE RESET_STATUS READ_BEGIN READ_END BACKEND_CREATED BACKEND_FAILED DELETED
creating       | busy     deleting     error        busy       invalid  available       error          busy
available      | deleting deleting     error        =          invalid  invalid         invalid        invalid
deleting       | busy     busy         busy         busy       invalid  busy            error_deleting deleted
error          | deleting deleting     error        invalid    invalid  invalid         invalid        invalid
error_deleting | invalid  deleting     error        invalid    invalid  invalid         invalid        invalid
deleted        | gone     gone         gone         gone       gone     gone            gone           gone
`;

const SNAPSHOT_HELD = `
state          | DELETE   FORCE_DELETE RESET_STATUS READ_BEGIN READ_END BACKEND_CREATED BACKEND_FAILED DELETED
creating       | busy     busy         error        busy       =        available       error          busy
available      | busy     busy         error        =          =        invalid         invalid        invalid
deleting       | busy     busy         busy         busy       =        busy            error_deleting deleted
error          | busy     busy         error        invalid    =        invalid         invalid        invalid
error_deleting | invalid  busy         error        invalid    =        invalid         invalid        invalid
deleted        | gone     gone         gone         gone       gone     gone            gone           gone
`;

describe('volume machine, quiet row', () => {
  checkMatrix(MODELS.volume, { readers: 0, dependents: 0, size: 1, operation: { new_size: 2 }, owner: null }, VOLUME_QUIET);
});
describe('volume machine, row with a reader and a snapshot', () => {
  checkMatrix(MODELS.volume, { readers: 1, dependents: 1, size: 1, operation: { new_size: 2 }, owner: null }, VOLUME_HELD);
});
describe('snapshot machine, quiet row', () => {
  checkMatrix(MODELS.snapshot, { readers: 0, size: 1, owner: null }, SNAPSHOT_QUIET);
});
describe('snapshot machine, row with a reader', () => {
  checkMatrix(MODELS.snapshot, { readers: 1, size: 1, owner: null }, SNAPSHOT_HELD);
});
