/**
 * The backends a node serves, by name (Cinder's `volume_backend_name`), and
 * how the scheduling step chooses among them: Cinder's CapabilitiesFilter
 * (a volume type's extra specs must all be satisfied by the backend's
 * capabilities; specs scoped other than `capabilities:` are ignored) and
 * CapacityFilter, then the most free space (CapacityWeigher).
 *
 * Every node serves the same backends (as every member of a Cinder
 * active/active cluster serves its backend): any worker may take any row,
 * and the row says which backend holds its data (`volumes.backend`).
 */
import type { Capacity, Driver } from './driver.ts';

export const DRIVER_VERSION = '1.0.0';

export interface Backend {
  readonly name: string;
  readonly driver: Driver;
  /** what it reports as vendor_name (VOLSTATE_BACKENDS `vendor=`; default volstate) */
  readonly vendor?: string;
  /** what it reports as storage_protocol (VOLSTATE_BACKENDS `protocol=`; default the driver's name) */
  readonly protocol?: string;
}

/** The vendor and protocol a backend reports (types may ask for them in extra specs, Tempest does). */
export const vendorOf = (b: Backend) => b.vendor ?? 'volstate';
export const protocolOf = (b: Backend) => b.protocol ?? b.driver.name;

export type Capabilities = Record<string, string | number | boolean | null>;

/** What a backend reports to the scheduler and to get_pools. */
export function capabilitiesOf(b: Backend, capacity: Capacity, allocatedGb: number): Capabilities {
  return {
    pool_name: b.name,
    volume_backend_name: b.name,
    vendor_name: vendorOf(b),
    driver_version: DRIVER_VERSION,
    storage_protocol: protocolOf(b),
    total_capacity_gb: capacity.totalGb,
    free_capacity_gb: capacity.freeGb,
    allocated_capacity_gb: allocatedGb,
    provisioned_capacity_gb: allocatedGb,
    reserved_percentage: 0,
    thin_provisioning_support: true,
    thick_provisioning_support: false,
    max_over_subscription_ratio: '1.0',
    multiattach: true,
    QoS_support: false,
  };
}

/**
 * Cinder's extra-spec operators (cinder/scheduler/filters/extra_specs_ops.py):
 * `<is> True`, `<in> x`, `<or> a <or> b`, `<all-in> x`, `==`, `!=`, `>=`,
 * `<=`, `s==`, `s!=`, `s<`, `s<=`, `s>`, `s>=`; anything else is compared as
 * a string.
 */
export function specMatches(value: unknown, spec: string): boolean {
  const v = String(value);
  const words = spec.trim().split(/\s+/);
  const op = words[0] ?? '';
  const arg = words.slice(1).join(' ');
  const num = (s: string) => Number(s);
  switch (op) {
    case '<is>':
      return v.toLowerCase() === arg.toLowerCase();
    case '<in>':
    case '<all-in>':
      return v.includes(arg);
    case '<or>':
      return spec
        .split('<or>')
        .map((s) => s.trim())
        .filter(Boolean)
        .includes(v);
    case '==':
      return num(v) === num(arg);
    case '!=':
      return num(v) !== num(arg);
    case '>=':
      return num(v) >= num(arg);
    case '<=':
      return num(v) <= num(arg);
    case 's==':
      return v === arg;
    case 's!=':
      return v !== arg;
    case 's<':
      return v < arg;
    case 's<=':
      return v <= arg;
    case 's>':
      return v > arg;
    case 's>=':
      return v >= arg;
    default:
      return v === spec;
  }
}

/** The first extra spec the capabilities do not satisfy, or undefined when all are. */
export function unmetSpec(specs: Record<string, string>, caps: Capabilities): string | undefined {
  for (const [key, wanted] of Object.entries(specs)) {
    const scope = key.split(':');
    if (scope.length > 1 && scope[0] !== 'capabilities') continue;
    const name = scope.length > 1 ? scope.slice(1).join(':') : key;
    if (!(name in caps) || !specMatches(caps[name], wanted)) return `${key}=${wanted}`;
  }
  return undefined;
}

export class Backends {
  private readonly byName: Map<string, Backend>;

  constructor(readonly list: readonly Backend[]) {
    if (list.length === 0) throw new Error('a node needs at least one backend');
    this.byName = new Map(list.map((b) => [b.name, b]));
    if (this.byName.size !== list.length) throw new Error(`backend names must differ: ${list.map((b) => b.name).join(', ')}`);
  }

  /** One backend named after its driver (`file`, `fake`): how volstate ran before it had several. */
  static single(driver: Driver): Backends {
    return new Backends([{ name: driver.name, driver }]);
  }

  /** Where volumes recorded before backends were named live (and what a node with one backend is). */
  get default(): Backend {
    return this.list[0]!;
  }

  /** The backend of a volume (null: the default); an unknown name is a node configured unlike the others. */
  get(name: string | null | undefined): Backend {
    if (name === null || name === undefined) return this.default;
    const b = this.byName.get(name);
    if (!b)
      throw new Error(
        `a volume is on backend ${name}, which this node does not serve (it serves ${[...this.byName.keys()].join(', ')}): give every node the same VOLSTATE_BACKENDS`,
      );
    return b;
  }

  driver(name: string | null | undefined): Driver {
    return this.get(name).driver;
  }

  /**
   * Choose a backend for a new volume of `sizeGb` and a type with `specs`:
   * those whose capabilities satisfy every spec and that have room, the
   * most free first. Otherwise the reason, as a person reads it.
   */
  async choose(specs: Record<string, string>, sizeGb: number): Promise<{ backend: Backend } | { reason: string }> {
    const reasons: string[] = [];
    let best: { backend: Backend; free: number } | undefined;
    for (const b of this.list) {
      const capacity = await b.driver.capacity();
      const unmet = unmetSpec(specs, capabilitiesOf(b, capacity, 0));
      if (unmet) reasons.push(`${b.name} does not satisfy ${unmet}`);
      else if (capacity.freeGb < sizeGb) reasons.push(`${b.name} has ${capacity.freeGb} GiB free`);
      else if (!best || capacity.freeGb > best.free) best = { backend: b, free: capacity.freeGb };
    }
    return best ? { backend: best.backend } : { reason: `No valid backend was found: ${reasons.join('; ')}.` };
  }

  async close(): Promise<void> {
    for (const b of this.list) await b.driver.close?.();
  }
}
