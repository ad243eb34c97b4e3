/**
 * Generators of hostile and random requests for every route of the API,
 * for the generative tests (test/api/generative.test.ts) and their long
 * run (`npm run test:fuzz`). A request is a method, a raw URL (so that
 * bad percent-encoding and over-long segments reach the server as sent),
 * headers and a raw body (so that deep nesting, NUL characters and lone
 * surrogates do too).
 *
 * The values are drawn from what a client may send (the keys real clients
 * use, with valid values most of the time) and what breaks parsers and
 * databases (non-UUID ids, numbers past 2^31 and 2^63, NUL, lone
 * surrogates, built-in object property names, deep nesting, garbage).
 */
import { hostname } from 'node:os';
import fc from 'fast-check';

/** Ids a request may name: filled in at run time with live resources. */
export interface Targets {
  volumes: string[];
  snapshots: string[];
  attachments: string[];
  /** a backup (available) of one of the volumes */
  backups: string[];
  /** volume types: the default, a public and a private one */
  types: string[];
  /** QoS specs: one, associated with a type */
  qos: string[];
  /** a volume transfer on offer (of a volume of its own) */
  transfers: string[];
  /** a user message (a volume no backend could take) */
  messages: string[];
  project: string;
}

export interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
  /** what the request was drawn as, for the report of a failure */
  route: string;
}

/** Strings that have broken, or could break, parsers and the database. */
const NASTY_STRINGS = [
  '',
  ' ',
  'notauuid',
  'a\u0000b',
  '\u0000',
  '\ud800',
  'x\udfffy',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '99999999999999999999',
  '9223372036854775808',
  '2147483648',
  '99999999999',
  '-1',
  '0',
  '1',
  '1.5',
  '1e+23',
  'Infinity',
  '-Infinity',
  'NaN',
  'True',
  'False',
  'None',
  'null',
  'true',
  "{'k': 'v'}",
  '{"k": "v"}',
  '{}',
  '[]',
  '[1]',
  '{"__proto__": "x"}',
  "'; DROP TABLE volumes; --",
  '%00',
  '%zz',
  'x'.repeat(256),
  'y'.repeat(5000),
  '\u202e\u00e9\u{1f600}',
  'available',
  'in-use',
  'error',
  'creating',
  'deleting',
  'maintenance',
  'bogus',
  'name:asc',
  'created_at:desc,id:asc',
  'size:sideways',
  'display_name',
  'rw',
  'ro',
] as const;

const UUIDISH = fc.oneof(
  fc.uuid(),
  fc.uuid().map((u) => `{${u}}`),
  fc.uuid().map((u) => u.toUpperCase()),
  fc.uuid().map((u) => u.replaceAll('-', '')),
);

/** A random string: any unit, lone surrogates included. */
const anyString = fc.string({ unit: 'binary', maxLength: 40 });

export const nastyString = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: anyString },
  { weight: 1, arbitrary: UUIDISH },
);

/** JSON of any depth: built as text, since JSON.stringify of a deep value overflows the stack too. */
const deepJson = fc.tuple(fc.integer({ min: 20, max: 20_000 }), fc.constantFrom('object', 'array')).map(([depth, kind]) => ({
  __raw: kind === 'object' ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}` : `${'['.repeat(depth)}${']'.repeat(depth)}`,
}));

/** A JSON value of any kind, hostile strings and deep nesting included. */
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    nastyString,
    fc.integer(),
    fc.constantFrom(0, 1, -1, 2 ** 31, 2 ** 53, 1e23, 1.5, Number.MAX_SAFE_INTEGER),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(nastyString, tie('v'), { maxKeys: 3 }),
    deepJson,
  ),
})).v;

/** An object with some of `keys` (each a plausible or a hostile value) and now and then a stranger. */
function objectOf(keys: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Record<string, unknown>> {
  const entries = Object.entries(keys).map(([k, good]) =>
    fc.option(fc.tuple(fc.constant(k), fc.oneof({ weight: 10, arbitrary: good }, { weight: 1, arbitrary: value })), {
      nil: undefined,
      freq: 2,
    }),
  );
  return fc
    .tuple(fc.tuple(...entries), fc.option(fc.dictionary(nastyString, value, { maxKeys: 2 }), { nil: undefined, freq: 8 }))
    .map(([present, extra]) => {
      const out: Record<string, unknown> = {};
      for (const e of present)
        if (e) Object.defineProperty(out, e[0], { value: e[1], enumerable: true, writable: true, configurable: true });
      for (const [k, v] of Object.entries(extra ?? {}))
        Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
      return out;
    });
}

/** Text a person would write, mostly; now and then a hostile string. */
const text = fc.oneof({ weight: 4, arbitrary: fc.string({ maxLength: 20 }) }, { weight: 1, arbitrary: nastyString });

const metadata = fc.oneof({ weight: 4, arbitrary: fc.dictionary(text, text, { maxKeys: 3 }) }, { weight: 1, arbitrary: value });
const size = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 3 }) },
  fc.constantFrom('2', 0, -1, 2 ** 31, 1.5, '1e3', 'x', 2 ** 53),
);
const bool = fc.oneof(fc.boolean(), fc.constantFrom('True', 'False', 'yes', 'maybe', 1, 0));
const connector = fc.oneof(fc.constant({}), fc.record({ host: nastyString, initiator: nastyString }, { requiredKeys: [] }), value);

function volumeBody(t: Targets) {
  return objectOf({
    size,
    name: text,
    description: text,
    display_name: text,
    metadata,
    multiattach: bool,
    // Sources and the options volstate lacks: mostly null, so that most creates can succeed.
    snapshot_id: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, fc.constantFrom(...t.snapshots), nastyString),
    source_volid: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, fc.constantFrom(...t.volumes), nastyString),
    volume_type: fc.constantFrom('__DEFAULT__', null, null, 'gold', 'fuzz-public', 'fuzz-private'),
    availability_zone: fc.constantFrom('nova', null, null, 'elsewhere'),
    imageRef: fc.constantFrom(null, null, null, 'img'),
  });
}

function volumeAction(t: Targets): fc.Arbitrary<Record<string, unknown>> {
  const args: Record<string, fc.Arbitrary<unknown>> = {
    'os-extend': objectOf({ new_size: size }),
    revert: objectOf({ snapshot_id: fc.oneof(fc.constantFrom(...t.snapshots), nastyString) }),
    'os-reserve': fc.constant(null),
    'os-unreserve': fc.constant({}),
    'os-attach': objectOf({
      instance_uuid: fc.oneof(fc.uuid(), nastyString),
      host_name: nastyString,
      mountpoint: nastyString,
      mode: fc.constantFrom('rw', 'ro', 'xx'),
    }),
    'os-begin_detaching': fc.constant(null),
    'os-roll_detaching': fc.constant(null),
    'os-detach': objectOf({ attachment_id: fc.oneof(fc.constantFrom(...t.attachments), nastyString) }),
    'os-initialize_connection': objectOf({ connector }),
    'os-terminate_connection': objectOf({ connector }),
    'os-set_bootable': objectOf({ bootable: bool }),
    'os-update_readonly_flag': objectOf({ readonly: bool }),
    'os-reset_status': objectOf({
      status: nastyString,
      attach_status: fc.constantFrom('attached', 'detached', 'x'),
      migration_status: fc.constantFrom('none', 'x'),
    }),
    'os-force_delete': fc.constant({}),
  };
  return fc.oneof(
    { weight: 6, arbitrary: fc.oneof(...Object.entries(args).map(([name, a]) => a.map((v) => ({ [name]: v })))) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(nastyString, value)
        .map(([k, v]) => Object.defineProperty({}, k, { value: v, enumerable: true }) as Record<string, unknown>),
    },
    { weight: 1, arbitrary: fc.dictionary(nastyString, value, { maxKeys: 3 }) },
  );
}

const QUERY_KEYS = {
  limit: fc.oneof(fc.integer({ min: 0, max: 5 }).map(String), nastyString),
  marker: nastyString,
  offset: fc.oneof(fc.integer({ min: 0, max: 5 }).map(String), nastyString),
  sort: fc.oneof(fc.constantFrom('name:asc', 'size:desc,id', 'created_at', 'display_name', 'status:asc'), nastyString),
  sort_key: fc.oneof(fc.constantFrom('name', 'display_name', 'created_at', 'size'), nastyString),
  sort_dir: fc.oneof(fc.constantFrom('asc', 'desc'), nastyString),
  name: nastyString,
  status: nastyString,
  metadata: fc.oneof(fc.constantFrom('{}', '{"k": "v"}', "{'k': 'v'}"), nastyString),
  all_tenants: bool.map(String),
  with_count: bool.map(String),
  volume_id: nastyString,
  instance_id: nastyString,
  cascade: bool.map(String),
  force: bool.map(String),
} as const;

/**
 * Percent-encoding of any string, lone surrogates included (encodeURIComponent
 * throws on them): they go as their three WTF-8 bytes, which a server must
 * refuse as bad UTF-8.
 */
export function encodeAny(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const pair = c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff;
    if (pair) {
      out += encodeURIComponent(s.slice(i, i + 2));
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      out += [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join('');
    } else {
      out += encodeURIComponent(s[i]!);
    }
  }
  return out;
}

const query = objectOf(QUERY_KEYS).map((q) =>
  Object.entries(q)
    .map(([k, v]) => `${encodeAny(k)}=${encodeAny(typeof v === 'string' ? v : (JSON.stringify(v) ?? ''))}`)
    .join('&'),
);

/** An id segment: a live one, a random UUID, or a hostile one (raw: it may be bad percent-encoding). */
function idSegment(live: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: live.length ? fc.constantFrom(...live) : fc.uuid() },
    { weight: 1, arbitrary: fc.uuid() },
    { weight: 2, arbitrary: nastyString.map(encodeAny) },
    { weight: 1, arbitrary: fc.constantFrom('%zz', '%', '%00', 'a'.repeat(150), '..', '', 'detail', 'summary') },
  );
}

const versions = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 70 }).map((n) => `volume 3.${n}`) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('volume latest', 'volume 3.71', 'volume 2.0', 'compute 3.5', 'volume 3.999999999999', 'volume', ''),
  },
  { weight: 1, arbitrary: nastyString.map((s) => s.replace(/[^\x20-\x7e]/g, '')) },
);

const headerValue = nastyString.map((s) => s.replace(/[^\x20-\x7e]/g, ''));

interface RouteDef {
  name: string;
  method: string;
  path: (t: Targets) => fc.Arbitrary<string>;
  body?: (t: Targets) => fc.Arbitrary<unknown>;
}

const collection = (name: string) => (_t: Targets) => fc.constant(`/${name}`);
const item =
  (name: string, live: (t: Targets) => string[], suffix = '') =>
  (t: Targets) =>
    idSegment(live(t)).map((id) => `/${name}/${id}${suffix}`);
const wrap = (key: string, inner: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { weight: 8, arbitrary: inner.map((v) => ({ [key]: v })) },
    { weight: 1, arbitrary: value },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );

/** The volume service of this machine's worker, as os-services names it (the fake driver's backend). */
const HOST_SERVICE = `${hostname()}@fake`;

const V = (t: Targets) => t.volumes;
const S = (t: Targets) => t.snapshots;
const A = (t: Targets) => t.attachments;
const B = (t: Targets) => t.backups;

/** The four reads every resource has: list, list detail, show, transitions. */
const reads = (collectionName: string, live: (t: Targets) => string[]): RouteDef[] => {
  const noun = collectionName.slice(0, -1);
  return [
    { name: `list ${collectionName}`, method: 'GET', path: collection(collectionName) },
    { name: `list ${collectionName} detail`, method: 'GET', path: collection(`${collectionName}/detail`) },
    { name: `show ${noun}`, method: 'GET', path: item(collectionName, live) },
    { name: `${noun} transitions`, method: 'GET', path: item(collectionName, live, '/transitions') },
  ];
};

export const ROUTES: RouteDef[] = [
  ...reads('volumes', V),
  ...reads('snapshots', S),
  ...reads('attachments', A),
  ...reads('backups', B),
  {
    name: 'create backup',
    method: 'POST',
    path: collection('backups'),
    body: (t) =>
      wrap(
        'backup',
        objectOf({
          volume_id: fc.oneof(fc.constantFrom(...t.volumes), nastyString),
          snapshot_id: fc.oneof(fc.constantFrom(...t.snapshots), nastyString),
          incremental: bool,
          force: bool,
          container: fc.oneof(fc.constantFrom('c', 'a/b', '../x', '/abs', 'a//b', '.'), nastyString),
          name: text,
          description: text,
          metadata,
          availability_zone: fc.oneof(fc.constant('nova'), nastyString),
        }),
      ),
  },
  {
    name: 'update backup',
    method: 'PUT',
    path: item('backups', B),
    body: () => wrap('backup', objectOf({ name: text, description: text, metadata })),
  },
  { name: 'delete backup', method: 'DELETE', path: item('backups', B) },
  {
    name: 'restore backup',
    method: 'POST',
    path: item('backups', B, '/restore'),
    body: (t) => wrap('restore', objectOf({ volume_id: fc.oneof(fc.constantFrom(...t.volumes), nastyString), name: text })),
  },
  {
    name: 'backup action',
    method: 'POST',
    path: item('backups', B, '/action'),
    body: () =>
      fc.oneof(
        objectOf({ 'os-reset_status': objectOf({ status: fc.oneof(fc.constantFrom('available', 'ERROR', 'creating'), nastyString) }) }),
        fc.constant({ 'os-force_delete': {} }),
        fc.dictionary(nastyString, value, { maxKeys: 2 }),
      ),
  },
  { name: 'export backup', method: 'GET', path: item('backups', B, '/export_record') },
  {
    name: 'import backup',
    method: 'POST',
    path: collection('backups/import_record'),
    body: () =>
      wrap(
        'backup-record',
        objectOf({
          backup_service: fc.oneof(fc.constant('cinder.backup.drivers.posix.PosixBackupDriver'), nastyString),
          backup_url: fc.oneof(
            value.map((v) => Buffer.from(JSON.stringify(v) ?? 'null').toString('base64')),
            fc
              .record(
                {
                  id: fc.oneof(fc.uuid(), nastyString),
                  size: fc.oneof(fc.integer({ min: -1, max: 3 }), nastyString),
                  container: fc.oneof(fc.constant('c'), nastyString),
                  service_metadata: fc.oneof(fc.constant('p'), nastyString),
                  object_count: fc.oneof(fc.integer({ min: -1, max: 3 }), nastyString),
                  parent_id: fc.oneof(fc.constant(null), nastyString),
                },
                { requiredKeys: [] },
              )
              .map((r) => Buffer.from(JSON.stringify(r)).toString('base64')),
            nastyString,
          ),
        }),
      ),
  },
  { name: 'create volume', method: 'POST', path: collection('volumes'), body: (t) => wrap('volume', volumeBody(t)) },
  { name: 'update volume', method: 'PUT', path: item('volumes', V), body: (t) => wrap('volume', volumeBody(t)) },
  { name: 'delete volume', method: 'DELETE', path: item('volumes', V) },
  { name: 'volume action', method: 'POST', path: item('volumes', V, '/action'), body: volumeAction },
  {
    name: 'create snapshot',
    method: 'POST',
    path: collection('snapshots'),
    body: (t) =>
      wrap(
        'snapshot',
        objectOf({ volume_id: fc.oneof(fc.constantFrom(...t.volumes), nastyString), force: bool, name: text, description: text, metadata }),
      ),
  },
  {
    name: 'update snapshot',
    method: 'PUT',
    path: item('snapshots', S),
    body: () => wrap('snapshot', objectOf({ name: text, description: text, metadata })),
  },
  { name: 'delete snapshot', method: 'DELETE', path: item('snapshots', S) },
  {
    name: 'snapshot action',
    method: 'POST',
    path: item('snapshots', S, '/action'),
    body: () =>
      fc.oneof(
        objectOf({ 'os-reset_status': objectOf({ status: nastyString }) }),
        fc.constant({ 'os-force_delete': {} }),
        fc.dictionary(nastyString, value, { maxKeys: 2 }),
      ),
  },
  {
    name: 'create attachment',
    method: 'POST',
    path: collection('attachments'),
    body: (t) =>
      wrap(
        'attachment',
        objectOf({
          volume_uuid: fc.oneof(fc.constantFrom(...t.volumes), nastyString),
          instance_uuid: fc.oneof(fc.uuid(), nastyString),
          connector,
          mode: fc.constantFrom('rw', 'ro', 'x'),
        }),
      ),
  },
  {
    name: 'update attachment',
    method: 'PUT',
    path: item('attachments', A),
    body: () => wrap('attachment', objectOf({ connector, mode: fc.constantFrom('rw', 'ro', 'x') })),
  },
  {
    name: 'attachment action',
    method: 'POST',
    path: item('attachments', A, '/action'),
    body: () => fc.oneof(fc.constant({ 'os-complete': null }), fc.dictionary(nastyString, value, { maxKeys: 2 })),
  },
  { name: 'delete attachment', method: 'DELETE', path: item('attachments', A) },
  ...(['volumes', 'snapshots'] as const).flatMap((c): RouteDef[] => {
    const live = c === 'volumes' ? V : S;
    const key = fc.oneof(fc.constantFrom('a', 'readonly', '__proto__'), nastyString.map(encodeAny));
    const keyed = (t: Targets) => fc.tuple(idSegment(live(t)), key).map(([id, k]) => `/${c}/${id}/metadata/${k}`);
    return [
      { name: `${c} metadata`, method: 'GET', path: item(c, live, '/metadata') },
      { name: `merge ${c} metadata`, method: 'POST', path: item(c, live, '/metadata'), body: () => wrap('metadata', metadata) },
      { name: `replace ${c} metadata`, method: 'PUT', path: item(c, live, '/metadata'), body: () => wrap('metadata', metadata) },
      { name: `${c} metadata item`, method: 'GET', path: keyed },
      { name: `set ${c} metadata item`, method: 'PUT', path: keyed, body: () => wrap('meta', metadata) },
      { name: `delete ${c} metadata item`, method: 'DELETE', path: keyed },
    ];
  }),
  { name: 'volume summary', method: 'GET', path: collection('volumes/summary') },
  ...((): RouteDef[] => {
    const target = (t: Targets) => fc.oneof(fc.constant(t.project), fc.constant('gold'), nastyString.map(encodeAny));
    const limits = objectOf({
      volumes: fc.oneof(fc.integer({ min: -2, max: 100 }), value),
      gigabytes: fc.integer({ min: -1, max: 1000 }),
      snapshots: fc.oneof(fc.integer({ min: -1, max: 50 }), nastyString),
      bogus: fc.integer(),
    });
    return [
      { name: 'show quotas', method: 'GET', path: (t) => target(t).map((p) => `/os-quota-sets/${p}`) },
      { name: 'quota defaults', method: 'GET', path: (t) => target(t).map((p) => `/os-quota-sets/${p}/defaults`) },
      {
        name: 'update quotas',
        method: 'PUT',
        path: (t) => target(t).map((p) => `/os-quota-sets/${p}`),
        body: () => wrap('quota_set', limits),
      },
      { name: 'delete quotas', method: 'DELETE', path: (t) => target(t).map((p) => `/os-quota-sets/${p}`) },
      { name: 'show quota class', method: 'GET', path: (t) => target(t).map((p) => `/os-quota-class-sets/${p}`) },
      {
        name: 'update quota class',
        method: 'PUT',
        path: (t) => target(t).map((p) => `/os-quota-class-sets/${p}`),
        body: () => wrap('quota_class_set', limits),
      },
      { name: 'limits', method: 'GET', path: collection('limits') },
    ];
  })(),
  ...((): RouteDef[] => {
    const qos = (suffix: string) => (t: Targets) => idSegment(t.qos).map((id) => `/qos-specs/${id}${suffix}`);
    const typeQuery = (path: string) => (t: Targets) =>
      fc
        .tuple(idSegment(t.qos), fc.oneof(idSegment(t.types), fc.constant('')))
        .map(([id, type]) => `/qos-specs/${id}/${path}?vol_type_id=${type}`);
    return [
      { name: 'list qos', method: 'GET', path: collection('qos-specs') },
      { name: 'show qos', method: 'GET', path: qos('') },
      {
        name: 'create qos',
        method: 'POST',
        path: collection('qos-specs'),
        body: () =>
          wrap(
            'qos_specs',
            objectOf({
              name: text,
              consumer: fc.oneof(fc.constantFrom('front-end', 'back-end', 'both'), nastyString),
              read_iops_sec: text,
            }),
          ),
      },
      { name: 'set qos keys', method: 'PUT', path: qos(''), body: () => wrap('qos_specs', metadata) },
      {
        name: 'unset qos keys',
        method: 'PUT',
        path: qos('/delete_keys'),
        body: () => objectOf({ keys: fc.oneof(fc.array(text, { maxLength: 3 }), value) }),
      },
      { name: 'delete qos', method: 'DELETE', path: qos('') },
      { name: 'qos associations', method: 'GET', path: qos('/associations') },
      { name: 'associate qos', method: 'GET', path: typeQuery('associate') },
      { name: 'disassociate qos', method: 'GET', path: typeQuery('disassociate') },
      { name: 'disassociate all qos', method: 'GET', path: qos('/disassociate_all') },
    ];
  })(),
  ...((): RouteDef[] => {
    const type = (t: Targets) => idSegment(t.types);
    const typed = (suffix: string) => (t: Targets) => type(t).map((id) => `/types/${id}${suffix}`);
    const specKey = fc.oneof(fc.constantFrom('multiattach', 'a', '__proto__'), nastyString.map(encodeAny));
    const typeBody = objectOf({
      name: text,
      description: text,
      'os-volume-type-access:is_public': bool,
      is_public: bool,
      extra_specs: metadata,
    });
    return [
      { name: 'list types', method: 'GET', path: collection('types') },
      { name: 'show type', method: 'GET', path: typed('') },
      { name: 'create type', method: 'POST', path: collection('types'), body: () => wrap('volume_type', typeBody) },
      { name: 'update type', method: 'PUT', path: typed(''), body: () => wrap('volume_type', typeBody) },
      { name: 'delete type', method: 'DELETE', path: typed('') },
      { name: 'type extra specs', method: 'GET', path: typed('/extra_specs') },
      { name: 'set type extra specs', method: 'POST', path: typed('/extra_specs'), body: () => wrap('extra_specs', metadata) },
      { name: 'type extra spec', method: 'GET', path: (t) => fc.tuple(type(t), specKey).map(([id, k]) => `/types/${id}/extra_specs/${k}`) },
      {
        name: 'set type extra spec',
        method: 'PUT',
        path: (t) => fc.tuple(type(t), specKey).map(([id, k]) => `/types/${id}/extra_specs/${k}`),
        body: () => metadata,
      },
      {
        name: 'delete type extra spec',
        method: 'DELETE',
        path: (t) => fc.tuple(type(t), specKey).map(([id, k]) => `/types/${id}/extra_specs/${k}`),
      },
      { name: 'type access', method: 'GET', path: typed('/os-volume-type-access') },
      {
        name: 'type action',
        method: 'POST',
        path: typed('/action'),
        body: () =>
          fc.oneof(
            objectOf({ addProjectAccess: objectOf({ project: text }) }),
            objectOf({ removeProjectAccess: objectOf({ project: text }) }),
            fc.dictionary(nastyString, value, { maxKeys: 2 }),
          ),
      },
    ];
  })(),
  ...(['os-volume-transfer', 'volume-transfers'] as const).flatMap((base): RouteDef[] => {
    const tr = (suffix: string) => (t: Targets) => idSegment(t.transfers).map((id) => `/${base}/${id}${suffix}`);
    const volumeId = (t: Targets) => fc.oneof(idSegment(t.volumes), value);
    return [
      { name: `list ${base}`, method: 'GET', path: collection(base) },
      { name: `list ${base} detail`, method: 'GET', path: collection(`${base}/detail`) },
      { name: `show ${base}`, method: 'GET', path: tr('') },
      {
        name: `create ${base}`,
        method: 'POST',
        path: collection(base),
        body: (t) => wrap('transfer', objectOf({ volume_id: volumeId(t), name: text, no_snapshots: bool })),
      },
      {
        name: `accept ${base}`,
        method: 'POST',
        path: tr('/accept'),
        body: () => wrap('accept', objectOf({ auth_key: fc.oneof(text, value) })),
      },
      { name: `delete ${base}`, method: 'DELETE', path: tr('') },
    ];
  }),
  { name: 'list messages', method: 'GET', path: collection('messages') },
  { name: 'show message', method: 'GET', path: (t) => idSegment(t.messages).map((id) => `/messages/${id}`) },
  { name: 'delete message', method: 'DELETE', path: (t) => idSegment(t.messages).map((id) => `/messages/${id}`) },
  { name: 'list services', method: 'GET', path: collection('os-services') },
  {
    name: 'update service',
    method: 'PUT',
    path: () => fc.constantFrom('enable', 'disable', 'disable-log-reason', 'freeze', 'thaw', 'bogus').map((a) => `/os-services/${a}`),
    body: () =>
      objectOf({
        host: fc.oneof(fc.constant(HOST_SERVICE), nastyString),
        binary: fc.oneof(fc.constantFrom('cinder-volume', 'cinder-scheduler'), nastyString),
        disabled_reason: text,
      }),
  },
  { name: 'list hosts', method: 'GET', path: collection('os-hosts') },
  {
    name: 'show host',
    method: 'GET',
    path: () => fc.oneof(fc.constant(HOST_SERVICE), nastyString.map(encodeAny)).map((h) => `/os-hosts/${h}`),
  },
  { name: 'pools', method: 'GET', path: collection('scheduler-stats/get_pools') },
  {
    name: 'capabilities',
    method: 'GET',
    path: () => fc.oneof(fc.constant(HOST_SERVICE), nastyString.map(encodeAny)).map((h) => `/capabilities/${h}`),
  },
  { name: 'availability zones', method: 'GET', path: collection('os-availability-zone') },
  { name: 'extensions', method: 'GET', path: collection('extensions') },
  {
    name: 'unknown path',
    method: 'GET',
    path: () => fc.array(idSegment([]), { minLength: 1, maxLength: 4 }).map((p) => `/${p.join('/')}`),
  },
];

function serialise(body: unknown): string | undefined {
  if (body === undefined) return undefined;
  if (body && typeof body === 'object' && '__raw' in body) return (body as { __raw: string }).__raw;
  // Deep values drawn inside a body are raw text too: splice them in.
  const raws: string[] = [];
  const text = JSON.stringify(body, (_k, v: unknown) => {
    if (v && typeof v === 'object' && '__raw' in v) {
      raws.push((v as { __raw: string }).__raw);
      return `\u0001RAW${raws.length - 1}\u0001`;
    }
    return v;
  });
  return text.replace(/"\\u0001RAW(\d+)\\u0001"/g, (_m, i: string) => raws[Number(i)]!);
}

/** A request to any route, with hostile parts in any place. */
export function requests(t: Targets): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(
    ...ROUTES.map((route) =>
      fc
        .record({
          path: route.path(t),
          prefix: fc.oneof(
            { weight: 4, arbitrary: fc.constant('/v3') },
            { weight: 3, arbitrary: fc.constant(`/v3/${t.project}`) },
            { weight: 1, arbitrary: idSegment([]).map((p) => `/v3/${p}`) },
          ),
          query: fc.option(query, { nil: undefined, freq: 2 }),
          body: route.body ? route.body(t) : fc.option(value, { nil: undefined, freq: 6 }),
          version: fc.option(versions, { nil: undefined, freq: 8 }),
          ifMatch: fc.option(
            fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 12 }).map(String) }, { weight: 1, arbitrary: headerValue }),
            { nil: undefined, freq: 6 },
          ),
          contentType: fc.oneof(
            { weight: 10, arbitrary: fc.constant('application/json') },
            { weight: 1, arbitrary: fc.constantFrom('text/plain', 'application/xml', 'application/json; charset=latin1', '') },
          ),
          token: fc.oneof({ weight: 10, arbitrary: fc.constant(`admin:${t.project}`) }, { weight: 1, arbitrary: headerValue }),
          method: fc.oneof(
            { weight: 12, arbitrary: fc.constant(route.method) },
            { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS') },
          ),
        })
        .map(({ path, prefix, query: q, body, version, ifMatch, contentType, token, method }) => {
          const headers: Record<string, string> = { 'content-type': contentType, 'x-auth-token': token };
          if (version !== undefined) headers['openstack-api-version'] = version;
          if (ifMatch !== undefined) headers['if-match'] = ifMatch;
          const text = method === 'GET' || method === 'HEAD' ? undefined : serialise(body);
          return {
            route: route.name,
            method,
            url: `${prefix}${path}${q ? `?${q}` : ''}`,
            headers,
            ...(text === undefined ? {} : { body: text }),
          };
        }),
    ),
  );
}
