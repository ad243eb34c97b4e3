/**
 * The full (state × event) matrix of each machine against an explicit,
 * hand-written table. A cell is the state `decide()` moves to, `=` when
 * the transition keeps the state, or the refusal: `busy` (409), `invalid`
 * (400), `gone` (final state). Changing a machine means changing a table
 * here, on purpose.
 *
 * Parked states (`<status>.parked`, entered only by os-reset_status) refuse
 * everything but another reset and a force delete, as `invalid`: nothing is
 * in flight there.
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

/** The transfer the offered rows of the tables are offered by. */
const OFFER = '00000000-0000-4000-8000-000000000003';

/** Sample parameters for events that take them. */
const PARAMS: Record<string, Record<string, unknown>> = {
  EXTEND: { new_size: 2, in_use: true },
  RESET_STATUS: { status: 'error' },
  REVERT: { snapshot_id: '00000000-0000-4000-8000-000000000001' },
  UPDATE_STATUS: { status: 'error', progress: '80%' },
  RETYPE: { type_id: '00000000-0000-4000-8000-000000000002' },
  TRANSFER_OFFER: { transfer_id: OFFER },
  TRANSFER_ACCEPT: { transfer_id: OFFER },
  TRANSFER_CANCEL: { transfer_id: OFFER },
  SNAPSHOT_BEGIN: { force: false },
  BACKUP_BEGIN: { force: false },
  RESTORE_BACKUP: { backup_id: '00000000-0000-4000-8000-000000000005', backup_size: 1 },
  ATTACHMENTS_CHANGED: { d_reserved: 1, d_attaching: 0, d_attached: 0, d_detaching: 0, d_error: 0 },
};

function outcome(model: ResourceModel, state: string, context: Record<string, unknown>, event: string): string {
  const d = decide(model, { state, context }, { type: event, ...PARAMS[event] });
  if (!d.ok) return d.kind;
  return d.to === state && model.index.candidates(state, event).some((c) => c.target === null) ? '=' : d.to;
}

/** `partial`: the table covers some of the events (the others are in another table). */
function checkMatrix(model: ResourceModel, context: Record<string, unknown>, table: string, opts: { partial?: boolean } = {}) {
  const { events, rows } = parse(table);
  it('covers every state and every event', () => {
    expect([...rows.keys()].sort()).toEqual([...model.states].sort());
    if (!opts.partial) expect([...events].sort()).toEqual(Object.keys(model.events).sort());
  });
  for (const [state, cells] of rows) {
    it(`from ${state}`, () => {
      const actual = Object.fromEntries(events.map((e) => [e, outcome(model, state, context, e)]));
      const expected = Object.fromEntries(events.map((e, i) => [e, cells[i]]));
      expect(actual).toEqual(expected);
    });
  }
}

// Volume events in two groups (client and link events; worker events), so
// the tables stay readable. ATTACHMENTS_CHANGED is sent with a new
// reservation (d_reserved +1).
const VOLUME_QUIET = `
state                     | DELETE           DELETE_CASCADE   FORCE_DELETE     FORCE_DELETE_CASCADE EXTEND            RESET_STATUS REVERT            RETYPE           SNAPSHOT_BEGIN READ_BEGIN READ_END SNAPSHOT_GONE ATTACHMENTS_CHANGED
creating.db               | busy             busy             deleting.backend deleting.backend     busy              error        busy              busy             busy           busy       invalid  invalid       busy
creating.scheduling       | busy             busy             deleting.backend deleting.backend     busy              error        busy              busy             busy           busy       invalid  invalid       busy
creating.backend          | busy             busy             deleting.backend deleting.backend     busy              error        busy              busy             busy           busy       invalid  invalid       busy
creating.parked           | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
available                 | deleting.backend deleting.backend deleting.backend deleting.backend     extending.backend error        reverting.backend retyping.backend =              =          invalid  invalid       reserved
reserved                  | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       reserved
attaching                 | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       reserved
in-use                    | invalid          invalid          deleting.backend deleting.backend     extending.backend error        invalid           retyping.backend invalid        =          invalid  invalid       reserved
detaching                 | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       reserved
extending.backend         | busy             busy             deleting.backend deleting.backend     busy              error        busy              busy             busy           busy       invalid  invalid       busy
extending.parked          | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
reverting.backend         | busy             busy             deleting.backend deleting.backend     busy              error        busy              busy             busy           busy       invalid  invalid       busy
reverting.parked          | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
deleting.backend          | busy             busy             busy             busy                 busy              busy         busy              busy             busy           busy       invalid  invalid       busy
deleting.parked           | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
error                     | deleting.backend deleting.backend deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
error_extending           | deleting.backend deleting.backend deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
error_deleting            | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
retyping.backend          | busy             busy             deleting.backend deleting.backend     busy              error        busy              busy             busy           busy       invalid  invalid       busy
retyping.parked           | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
awaiting-transfer.offered | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
awaiting-transfer.parked  | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
restoring-backup.backend  | busy             busy             deleting.backend deleting.backend     busy              error        busy              busy             busy           busy       invalid  invalid       busy
restoring-backup.parked   | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
error_restoring           | deleting.backend deleting.backend deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
maintenance.parked        | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
managing.parked           | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
error_managing.parked     | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
backing-up.parked         | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
error_backing-up.parked   | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
downloading.parked        | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
uploading.parked          | invalid          invalid          deleting.backend deleting.backend     invalid           error        invalid           invalid          invalid        invalid    invalid  invalid       invalid
deleted                   | gone             gone             gone             gone                 gone              gone         gone              gone             gone           gone       gone     gone          gone
`;

const VOLUME_HELD = `
state                     | DELETE  DELETE_CASCADE FORCE_DELETE FORCE_DELETE_CASCADE EXTEND  RESET_STATUS REVERT  RETYPE  SNAPSHOT_BEGIN READ_BEGIN READ_END SNAPSHOT_GONE ATTACHMENTS_CHANGED
creating.db               | busy    busy           invalid      busy                 busy    error        busy    busy    busy           busy       =        =             busy
creating.scheduling       | busy    busy           invalid      busy                 busy    error        busy    busy    busy           busy       =        =             busy
creating.backend          | busy    busy           invalid      busy                 busy    error        busy    busy    busy           busy       =        =             busy
creating.parked           | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
available                 | invalid busy           invalid      busy                 busy    error        busy    busy    =              =          =        =             reserved
reserved                  | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             reserved
attaching                 | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             reserved
in-use                    | invalid invalid        invalid      busy                 busy    error        invalid busy    invalid        =          =        =             reserved
detaching                 | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             reserved
extending.backend         | busy    busy           invalid      busy                 busy    error        busy    busy    busy           busy       =        =             busy
extending.parked          | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
reverting.backend         | busy    busy           invalid      busy                 busy    error        busy    busy    busy           busy       =        =             busy
reverting.parked          | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
deleting.backend          | busy    busy           busy         busy                 busy    busy         busy    busy    busy           busy       =        =             busy
deleting.parked           | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
error                     | invalid busy           invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
error_extending           | invalid busy           invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
error_deleting            | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
retyping.backend          | busy    busy           invalid      busy                 busy    error        busy    busy    busy           busy       =        =             busy
retyping.parked           | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
awaiting-transfer.offered | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
awaiting-transfer.parked  | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
restoring-backup.backend  | busy    busy           invalid      busy                 busy    error        busy    busy    busy           busy       =        =             busy
restoring-backup.parked   | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
error_restoring           | invalid busy           invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
maintenance.parked        | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
managing.parked           | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
error_managing.parked     | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
backing-up.parked         | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
error_backing-up.parked   | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
downloading.parked        | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
uploading.parked          | invalid invalid        invalid      busy                 invalid error        invalid invalid invalid        invalid    =        =             invalid
deleted                   | gone    gone           gone         gone                 gone    gone         gone    gone    gone           gone       gone     gone          gone
`;

const VOLUME_WORKER_QUIET = `
state                     | SCHEDULE            SCHEDULED        SCHEDULE_FAILED BACKEND_CREATED BACKEND_FAILED  EXTENDED  REVERTED  RETYPED   DELETED WORKER_LOST
creating.db               | creating.scheduling busy             busy            busy            busy            busy      busy      busy      busy    creating.db
creating.scheduling       | busy                creating.backend error           busy            busy            busy      busy      busy      busy    creating.db
creating.backend          | busy                busy             busy            available       error           busy      busy      busy      busy    creating.backend
creating.parked           | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
available                 | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
reserved                  | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
attaching                 | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
in-use                    | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
detaching                 | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
extending.backend         | busy                busy             busy            busy            error_extending available busy      busy      busy    extending.backend
extending.parked          | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
reverting.backend         | busy                busy             busy            busy            error           busy      available busy      busy    reverting.backend
reverting.parked          | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
deleting.backend          | busy                busy             busy            busy            error_deleting  busy      busy      busy      deleted deleting.backend
deleting.parked           | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
error                     | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
error_extending           | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
error_deleting            | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
retyping.backend          | busy                busy             busy            busy            available       busy      busy      available busy    retyping.backend
retyping.parked           | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
awaiting-transfer.offered | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
awaiting-transfer.parked  | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
restoring-backup.backend  | busy                busy             busy            busy            error_restoring busy      busy      busy      busy    restoring-backup.backend
restoring-backup.parked   | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
error_restoring           | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
maintenance.parked        | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
managing.parked           | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
error_managing.parked     | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
backing-up.parked         | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
error_backing-up.parked   | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
downloading.parked        | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
uploading.parked          | invalid             invalid          invalid         invalid         invalid         invalid   invalid   invalid   invalid invalid
deleted                   | gone                gone             gone            gone            gone            gone      gone      gone      gone    gone
`;

// Held: the same, except that a volume whose snapshots are not gone is not deleted.
const VOLUME_WORKER_HELD = VOLUME_WORKER_QUIET.replace(
  'deleting.backend          | busy                busy             busy            busy            error_deleting  busy      busy      busy      deleted deleting.backend',
  'deleting.backend          | busy                busy             busy            busy            error_deleting  busy      busy      busy      invalid deleting.backend',
);

// Transfers, from a row offered by OFFER where it is offered at all.
const VOLUME_TRANSFER = `
state                     | TRANSFER_OFFER            TRANSFER_ACCEPT TRANSFER_CANCEL
creating.db               | busy                      busy            busy
creating.scheduling       | busy                      busy            busy
creating.backend          | busy                      busy            busy
creating.parked           | invalid                   invalid         invalid
available                 | awaiting-transfer.offered invalid         invalid
reserved                  | invalid                   invalid         invalid
attaching                 | invalid                   invalid         invalid
in-use                    | invalid                   invalid         invalid
detaching                 | invalid                   invalid         invalid
extending.backend         | busy                      busy            busy
extending.parked          | invalid                   invalid         invalid
reverting.backend         | busy                      busy            busy
reverting.parked          | invalid                   invalid         invalid
deleting.backend          | busy                      busy            busy
deleting.parked           | invalid                   invalid         invalid
error                     | invalid                   invalid         invalid
error_extending           | invalid                   invalid         invalid
error_deleting            | invalid                   invalid         invalid
retyping.backend          | busy                      busy            busy
retyping.parked           | invalid                   invalid         invalid
awaiting-transfer.offered | invalid                   available       available
awaiting-transfer.parked  | invalid                   invalid         invalid
restoring-backup.backend  | busy                      busy            busy
restoring-backup.parked   | invalid                   invalid         invalid
error_restoring           | invalid                   invalid         invalid
maintenance.parked        | invalid                   invalid         invalid
managing.parked           | invalid                   invalid         invalid
error_managing.parked     | invalid                   invalid         invalid
backing-up.parked         | invalid                   invalid         invalid
error_backing-up.parked   | invalid                   invalid         invalid
downloading.parked        | invalid                   invalid         invalid
uploading.parked          | invalid                   invalid         invalid
deleted                   | gone                      gone            gone
`;

const SNAPSHOT_QUIET = `
state             | DELETE           FORCE_DELETE     RESET_STATUS UPDATE_STATUS READ_BEGIN RESTORE_BEGIN READ_END BACKEND_CREATED BACKEND_FAILED DELETED WORKER_LOST      BACKUP_BEGIN BACKUP_END GROUPED        GROUP_CREATED GROUP_FAILED
creating.backend  | busy             deleting.backend error        busy          busy       busy          invalid  available       error          busy    creating.backend busy         invalid    creating.group busy          busy
creating.group    | deleting.backend deleting.backend error        busy          busy       busy          invalid  busy            busy           busy    busy             busy         invalid    busy           available     error
creating.parked   | invalid          deleting.backend error        error         invalid    invalid       invalid  invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
available         | deleting.backend deleting.backend error        invalid       =          restoring     invalid  invalid         invalid        invalid invalid          =            invalid    invalid        invalid       invalid
restoring         | busy             deleting.backend error        busy          busy       busy          invalid  busy            busy           busy    busy             busy         invalid    busy           busy          busy
deleting.backend  | busy             busy             busy         busy          busy       busy          invalid  busy            error_deleting deleted deleting.backend busy         invalid    busy           busy          busy
deleting.parked   | invalid          deleting.backend error        invalid       invalid    invalid       invalid  invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
error             | deleting.backend deleting.backend error        invalid       invalid    invalid       invalid  invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
error_deleting    | invalid          deleting.backend error        invalid       invalid    invalid       invalid  invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
updating.parked   | invalid          deleting.backend error        invalid       invalid    invalid       invalid  invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
unmanaging.parked | invalid          deleting.backend error        invalid       invalid    invalid       invalid  invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
backing-up.parked | invalid          deleting.backend error        invalid       invalid    invalid       invalid  invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
deleted           | gone             gone             gone         gone          gone       gone          gone     gone            gone           gone    gone             gone         gone       gone           gone          gone
`;

const SNAPSHOT_HELD = `
state             | DELETE  FORCE_DELETE RESET_STATUS UPDATE_STATUS READ_BEGIN RESTORE_BEGIN READ_END  BACKEND_CREATED BACKEND_FAILED DELETED WORKER_LOST      BACKUP_BEGIN BACKUP_END GROUPED        GROUP_CREATED GROUP_FAILED
creating.backend  | busy    busy         error        busy          busy       busy          =         available       error          busy    creating.backend busy         invalid    creating.group busy          busy
creating.group    | busy    busy         error        busy          busy       busy          =         busy            busy           busy    busy             busy         invalid    busy           available     error
creating.parked   | invalid busy         error        error         invalid    invalid       =         invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
available         | busy    busy         error        invalid       =          busy          =         invalid         invalid        invalid invalid          =            invalid    invalid        invalid       invalid
restoring         | busy    busy         error        busy          busy       busy          available busy            busy           busy    busy             busy         invalid    busy           busy          busy
deleting.backend  | busy    busy         busy         busy          busy       busy          =         busy            error_deleting deleted deleting.backend busy         invalid    busy           busy          busy
deleting.parked   | invalid busy         error        invalid       invalid    invalid       =         invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
error             | busy    busy         error        invalid       invalid    invalid       =         invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
error_deleting    | invalid busy         error        invalid       invalid    invalid       =         invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
updating.parked   | invalid busy         error        invalid       invalid    invalid       =         invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
unmanaging.parked | invalid busy         error        invalid       invalid    invalid       =         invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
backing-up.parked | invalid busy         error        invalid       invalid    invalid       =         invalid         invalid        invalid invalid          invalid      invalid    invalid        invalid       invalid
deleted           | gone    gone         gone         gone          gone       gone          gone      gone            gone           gone    gone             gone         gone       gone           gone          gone
`;

const ATTACHMENT = `
state           | CONNECT   CONNECT_FAILED  COMPLETE BEGIN_DETACH ROLL_DETACH DETACH   DETACH_FAILED
reserved        | attaching error_attaching attached invalid      invalid     detached invalid
attaching       | busy      busy            attached busy         busy        detached busy
attached        | invalid   invalid         invalid  detaching    invalid     detached invalid
detaching       | busy      busy            busy     busy         attached    detached error_detaching
error_attaching | invalid   invalid         invalid  invalid      invalid     detached invalid
error_detaching | invalid   invalid         invalid  invalid      invalid     detached invalid
detached        | gone      gone            gone     gone         gone        gone     gone
`;

// Backups of the volume (machines/backup.ts), from a quiet row, and from one with a backup being made.
const VOLUME_BACKUP = `
state                     | BACKUP_BEGIN BACKUP_END RESTORE_BACKUP           RESTORED
creating.db               | busy         invalid    busy                     busy
creating.scheduling       | busy         invalid    busy                     busy
creating.backend          | busy         invalid    busy                     busy
creating.parked           | invalid      invalid    invalid                  invalid
available                 | =            invalid    restoring-backup.backend invalid
reserved                  | invalid      invalid    invalid                  invalid
attaching                 | invalid      invalid    invalid                  invalid
in-use                    | invalid      invalid    invalid                  invalid
detaching                 | invalid      invalid    invalid                  invalid
extending.backend         | busy         invalid    busy                     busy
extending.parked          | invalid      invalid    invalid                  invalid
reverting.backend         | busy         invalid    busy                     busy
reverting.parked          | invalid      invalid    invalid                  invalid
deleting.backend          | busy         invalid    busy                     busy
deleting.parked           | invalid      invalid    invalid                  invalid
error                     | invalid      invalid    invalid                  invalid
error_extending           | invalid      invalid    invalid                  invalid
error_deleting            | invalid      invalid    invalid                  invalid
retyping.backend          | busy         invalid    busy                     busy
retyping.parked           | invalid      invalid    invalid                  invalid
awaiting-transfer.offered | invalid      invalid    invalid                  invalid
awaiting-transfer.parked  | invalid      invalid    invalid                  invalid
restoring-backup.backend  | busy         invalid    busy                     available
restoring-backup.parked   | invalid      invalid    invalid                  invalid
error_restoring           | invalid      invalid    invalid                  invalid
maintenance.parked        | invalid      invalid    invalid                  invalid
managing.parked           | invalid      invalid    invalid                  invalid
error_managing.parked     | invalid      invalid    invalid                  invalid
backing-up.parked         | invalid      invalid    invalid                  invalid
error_backing-up.parked   | invalid      invalid    invalid                  invalid
downloading.parked        | invalid      invalid    invalid                  invalid
uploading.parked          | invalid      invalid    invalid                  invalid
deleted                   | gone         gone       gone                     gone
`;

const VOLUME_BACKING_UP = `
state                     | BACKUP_BEGIN BACKUP_END RESTORE_BACKUP RESTORED
creating.db               | busy         =          busy           busy
creating.scheduling       | busy         =          busy           busy
creating.backend          | busy         =          busy           busy
creating.parked           | invalid      =          invalid        invalid
available                 | =            =          busy           invalid
reserved                  | invalid      =          invalid        invalid
attaching                 | invalid      =          invalid        invalid
in-use                    | invalid      =          invalid        invalid
detaching                 | invalid      =          invalid        invalid
extending.backend         | busy         =          busy           busy
extending.parked          | invalid      =          invalid        invalid
reverting.backend         | busy         =          busy           busy
reverting.parked          | invalid      =          invalid        invalid
deleting.backend          | busy         =          busy           busy
deleting.parked           | invalid      =          invalid        invalid
error                     | invalid      =          invalid        invalid
error_extending           | invalid      =          invalid        invalid
error_deleting            | invalid      =          invalid        invalid
retyping.backend          | busy         =          busy           busy
retyping.parked           | invalid      =          invalid        invalid
awaiting-transfer.offered | invalid      =          invalid        invalid
awaiting-transfer.parked  | invalid      =          invalid        invalid
restoring-backup.backend  | busy         =          busy           available
restoring-backup.parked   | invalid      =          invalid        invalid
error_restoring           | invalid      =          invalid        invalid
maintenance.parked        | invalid      =          invalid        invalid
managing.parked           | invalid      =          invalid        invalid
error_managing.parked     | invalid      =          invalid        invalid
backing-up.parked         | invalid      =          invalid        invalid
error_backing-up.parked   | invalid      =          invalid        invalid
downloading.parked        | invalid      =          invalid        invalid
uploading.parked          | invalid      =          invalid        invalid
deleted                   | gone         gone       gone           gone
`;

const BACKUP_QUIET = `
state            | DELETE           FORCE_DELETE     RESET_STATUS IMPORT          RESTORE_BEGIN READ_END CHILD_BEGIN CHILD_GONE BACKED_UP BACKEND_FAILED DELETED WORKER_LOST
creating.backend | busy             deleting.backend error        creating.import busy          invalid  busy        invalid    available error          busy    creating.backend
creating.import  | busy             deleting.backend error        busy            busy          invalid  busy        invalid    available error          busy    creating.import
available        | deleting.backend deleting.backend error        invalid         restoring     invalid  =           invalid    invalid   invalid        invalid invalid
restoring        | busy             busy             error        busy            =             invalid  =           invalid    busy      busy           busy    busy
deleting.backend | busy             busy             busy         busy            busy          invalid  busy        invalid    busy      error          deleted deleting.backend
error            | deleting.backend deleting.backend error        invalid         invalid       invalid  invalid     invalid    invalid   invalid        invalid invalid
error_deleting   | invalid          deleting.backend error        invalid         invalid       invalid  invalid     invalid    invalid   invalid        invalid invalid
deleted          | gone             gone             gone         gone            gone          gone     gone        gone       gone      gone           gone    gone
`;

// One restore reading it, one incremental child.
const BACKUP_HELD = `
state            | DELETE  FORCE_DELETE RESET_STATUS IMPORT          RESTORE_BEGIN READ_END  CHILD_BEGIN CHILD_GONE BACKED_UP BACKEND_FAILED DELETED WORKER_LOST
creating.backend | busy    invalid      error        creating.import busy          =         busy        =          available error          busy    creating.backend
creating.import  | busy    invalid      error        busy            busy          =         busy        =          available error          busy    creating.import
available        | invalid invalid      error        invalid         restoring     =         =           =          invalid   invalid        invalid invalid
restoring        | busy    busy         error        busy            =             available =           =          busy      busy           busy    busy
deleting.backend | busy    busy         busy         busy            busy          =         busy        =          busy      error          deleted deleting.backend
error            | invalid invalid      error        invalid         invalid       =         invalid     =          invalid   invalid        invalid invalid
error_deleting   | invalid invalid      error        invalid         invalid       =         invalid     =          invalid   invalid        invalid invalid
deleted          | gone    gone         gone         gone            gone          gone      gone        gone       gone      gone           gone    gone
`;

// A snapshot with a backup being made of it: not deleted meanwhile.
const SNAPSHOT_BACKING_UP = `
state             | DELETE  FORCE_DELETE BACKUP_BEGIN BACKUP_END
creating.backend  | busy    busy         busy         =
creating.group    | busy    busy         busy         =
creating.parked   | invalid busy         invalid      =
available         | busy    busy         =            =
restoring         | busy    busy         busy         =
deleting.backend  | busy    busy         busy         =
deleting.parked   | invalid busy         invalid      =
error             | busy    busy         invalid      =
error_deleting    | invalid busy         invalid      =
updating.parked   | invalid busy         invalid      =
unmanaging.parked | invalid busy         invalid      =
backing-up.parked | invalid busy         invalid      =
deleted           | gone    gone         gone         gone
`;

const GROUP_QUIET = `
state            | DELETE           DELETE_WITH_VOLUMES UPDATE  RESET_STATUS MEMBER_ADD MEMBER_GONE SNAPSHOT_BEGIN SNAPSHOT_GONE CREATED   BACKEND_FAILED DELETED WORKER_LOST
creating.backend | busy             busy                busy    error        =          invalid     busy           invalid       available error          busy    creating.backend
creating.parked  | deleting.backend deleting.backend    invalid error        invalid    invalid     invalid        invalid       invalid   invalid        invalid invalid
available        | deleting.backend deleting.backend    =       error        =          invalid     =              invalid       invalid   invalid        invalid invalid
updating.parked  | deleting.backend deleting.backend    invalid error        invalid    invalid     invalid        invalid       invalid   invalid        invalid invalid
deleting.backend | busy             busy                busy    error        busy       invalid     busy           invalid       busy      error_deleting deleted deleting.backend
deleting.parked  | deleting.backend deleting.backend    invalid error        invalid    invalid     invalid        invalid       invalid   invalid        invalid invalid
error            | deleting.backend deleting.backend    invalid error        invalid    invalid     invalid        invalid       invalid   invalid        invalid invalid
error_deleting   | deleting.backend deleting.backend    invalid error        invalid    invalid     invalid        invalid       invalid   invalid        invalid invalid
deleted          | gone             gone                gone    gone         gone       gone        gone           gone          gone      gone           gone    gone
`;

// One member volume, one group snapshot.
const GROUP_HELD = `
state            | DELETE  DELETE_WITH_VOLUMES UPDATE  RESET_STATUS MEMBER_ADD MEMBER_GONE SNAPSHOT_BEGIN SNAPSHOT_GONE CREATED   BACKEND_FAILED DELETED WORKER_LOST
creating.backend | busy    busy                busy    error        =          =           busy           =             available error          busy    creating.backend
creating.parked  | invalid invalid             invalid error        invalid    =           invalid        =             invalid   invalid        invalid invalid
available        | invalid invalid             =       error        =          =           =              =             invalid   invalid        invalid invalid
updating.parked  | invalid invalid             invalid error        invalid    =           invalid        =             invalid   invalid        invalid invalid
deleting.backend | busy    busy                busy    error        busy       =           busy           =             busy      error_deleting invalid deleting.backend
deleting.parked  | invalid invalid             invalid error        invalid    =           invalid        =             invalid   invalid        invalid invalid
error            | invalid invalid             invalid error        invalid    =           invalid        =             invalid   invalid        invalid invalid
error_deleting   | invalid invalid             invalid error        invalid    =           invalid        =             invalid   invalid        invalid invalid
deleted          | gone    gone                gone    gone         gone       gone        gone           gone          gone      gone           gone    gone
`;

const GROUP_SNAPSHOT_QUIET = `
state            | DELETE           RESET_STATUS MEMBER_ADD MEMBER_GONE CREATED   BACKEND_FAILED DELETED WORKER_LOST
creating.backend | busy             error        =          invalid     available error          busy    creating.backend
creating.parked  | deleting.backend error        invalid    invalid     invalid   invalid        invalid invalid
available        | deleting.backend error        invalid    invalid     invalid   invalid        invalid invalid
updating.parked  | deleting.backend error        invalid    invalid     invalid   invalid        invalid invalid
deleting.backend | busy             error        busy       invalid     busy      busy           deleted deleting.backend
deleting.parked  | deleting.backend error        invalid    invalid     invalid   invalid        invalid invalid
error            | deleting.backend error        invalid    invalid     invalid   invalid        invalid invalid
error_deleting   | deleting.backend error        invalid    invalid     invalid   invalid        invalid invalid
deleted          | gone             gone         gone       gone        gone      gone           gone    gone
`;

// One member snapshot.
const GROUP_SNAPSHOT_HELD = `
state            | DELETE           RESET_STATUS MEMBER_ADD MEMBER_GONE CREATED   BACKEND_FAILED DELETED WORKER_LOST
creating.backend | busy             error        =          =           available error          busy    creating.backend
creating.parked  | deleting.backend error        invalid    =           invalid   invalid        invalid invalid
available        | deleting.backend error        invalid    =           invalid   invalid        invalid invalid
updating.parked  | deleting.backend error        invalid    =           invalid   invalid        invalid invalid
deleting.backend | busy             error        busy       =           busy      busy           busy    deleting.backend
deleting.parked  | deleting.backend error        invalid    =           invalid   invalid        invalid invalid
error            | deleting.backend error        invalid    =           invalid   invalid        invalid invalid
error_deleting   | deleting.backend error        invalid    =           invalid   invalid        invalid invalid
deleted          | gone             gone         gone       gone        gone      gone           gone    gone
`;

const volumeDefault = MODELS.volume.machine.config.context as Record<string, unknown>;
const quietVolume = { ...volumeDefault, size: 1, operation: { new_size: 2 } };
const heldVolume = { ...quietVolume, readers: 1, dependents: 1 };

describe('volume machine, quiet row: client and link events', () => {
  checkMatrix(MODELS.volume, quietVolume, VOLUME_QUIET, { partial: true });
});
describe('volume machine, quiet row: worker events', () => {
  checkMatrix(MODELS.volume, quietVolume, VOLUME_WORKER_QUIET, { partial: true });
});
describe('volume machine, row with a reader and a snapshot: client and link events', () => {
  checkMatrix(MODELS.volume, heldVolume, VOLUME_HELD, { partial: true });
});
describe('volume machine, row with a reader and a snapshot: worker events', () => {
  checkMatrix(MODELS.volume, heldVolume, VOLUME_WORKER_HELD, { partial: true });
});
describe('volume machine, transfers', () => {
  const offered = { ...quietVolume, operation: { transfer_id: OFFER } };
  checkMatrix(MODELS.volume, offered, VOLUME_TRANSFER, { partial: true });
  it('an offer ends only by the transfer that made it', () => {
    for (const event of ['TRANSFER_ACCEPT', 'TRANSFER_CANCEL']) {
      const d = decide(
        MODELS.volume,
        { state: 'awaiting-transfer.offered', context: offered },
        { type: event, transfer_id: '00000000-0000-4000-8000-000000000004' },
      );
      expect(d).toMatchObject({ ok: false, kind: 'invalid', failed: [{ guard: 'offeredBy' }] });
    }
  });
  it('a volume being read (a snapshot, a clone) is not offered', () => {
    const d = decide(MODELS.volume, { state: 'available', context: heldVolume }, { type: 'TRANSFER_OFFER', transfer_id: OFFER });
    expect(d.ok).toBe(false);
  });
});
describe('volume machine, backups', () => {
  checkMatrix(MODELS.volume, quietVolume, VOLUME_BACKUP, { partial: true });
});
describe('volume machine, a backup of it being made', () => {
  checkMatrix(MODELS.volume, { ...quietVolume, backups: 1 }, VOLUME_BACKING_UP, { partial: true });
  it('a backup being made blocks deleting the volume, and nothing a client does with it', () => {
    const backingUp = { ...quietVolume, backups: 1 };
    expect(decide(MODELS.volume, { state: 'available', context: backingUp }, { type: 'DELETE' })).toMatchObject({
      ok: false,
      kind: 'busy',
    });
    for (const event of [
      { type: 'EXTEND', new_size: 2, in_use: false },
      { type: 'SNAPSHOT_BEGIN', force: false },
    ]) {
      expect(decide(MODELS.volume, { state: 'available', context: backingUp }, event).ok).toBe(true);
    }
  });
});
describe('volume machine tables', () => {
  it('cover every event between them', () => {
    const events = [VOLUME_QUIET, VOLUME_WORKER_QUIET, VOLUME_TRANSFER, VOLUME_BACKUP].flatMap((t) => parse(t).events);
    expect(events.sort()).toEqual(Object.keys(MODELS.volume.events).sort());
  });
});
describe('snapshot machine, quiet row', () => {
  checkMatrix(MODELS.snapshot, { readers: 0, backups: 0, size: 1, owner: null }, SNAPSHOT_QUIET);
});
describe('snapshot machine, row with a reader', () => {
  checkMatrix(MODELS.snapshot, { readers: 1, backups: 0, size: 1, owner: null }, SNAPSHOT_HELD);
});
describe('snapshot machine, a backup of it being made', () => {
  checkMatrix(MODELS.snapshot, { readers: 0, size: 1, owner: null, backups: 1 }, SNAPSHOT_BACKING_UP, { partial: true });
});
describe('backup machine, quiet row', () => {
  checkMatrix(MODELS.backup, { readers: 0, dependents: 0, size: 1, operation: null, owner: null }, BACKUP_QUIET);
});
describe('backup machine, a restore reading it and an incremental child', () => {
  checkMatrix(MODELS.backup, { readers: 1, dependents: 1, size: 1, operation: null, owner: null }, BACKUP_HELD);
});
describe('group machine, quiet row', () => {
  checkMatrix(MODELS.group, { members: 0, dependents: 0, operation: null, owner: null }, GROUP_QUIET);
});
describe('group machine, a member volume and a group snapshot', () => {
  checkMatrix(MODELS.group, { members: 1, dependents: 1, operation: null, owner: null }, GROUP_HELD);
});
describe('group snapshot machine, quiet row', () => {
  checkMatrix(MODELS.group_snapshot, { members: 0, operation: null, owner: null }, GROUP_SNAPSHOT_QUIET);
});
describe('group snapshot machine, a member snapshot', () => {
  checkMatrix(MODELS.group_snapshot, { members: 1, operation: null, owner: null }, GROUP_SNAPSHOT_HELD);
});
describe('attachment machine', () => {
  checkMatrix(MODELS.attachment, { owner: null }, ATTACHMENT);
});
