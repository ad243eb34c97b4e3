/**
 * The notification table (machines/notifications.ts) against the machines:
 * each rule names statuses and events its machine has and matches at least
 * one of its edges, so a renamed state or event breaks here, not silently
 * in what billing receives; and each operation's start is followed, on every
 * path the machine allows, by its end or its error before the next start.
 */
import { describe, expect, it } from 'vitest';
import { MODELS, RESOURCE_TYPES } from '../../machines/index.ts';
import { CREATE_EVENT } from '../../machines/model.ts';
import { NOT_OPERATIONS, NOTIFICATIONS, notificationRule } from '../../machines/notifications.ts';

/** Every edge of a machine as statuses: [from status (null: creation), event, to status]. */
function edges(type: (typeof RESOURCE_TYPES)[number]): [string | null, string, string][] {
  const ix = MODELS[type].index;
  const out: [string | null, string, string][] = [[null, CREATE_EVENT, ix.statusOf(ix.initial)]];
  for (const from of ix.leaves)
    for (const event of ix.events)
      for (const c of ix.candidates(from, event)) if (c.target !== null) out.push([ix.statusOf(from), event, ix.statusOf(c.target)]);
  return out;
}

describe('the notification table', () => {
  for (const type of RESOURCE_TYPES) {
    it(`${type}: every rule names its machine's statuses and events and matches one of its edges`, () => {
      const ix = MODELS[type].index;
      const statuses = new Set(ix.leaves.map((s) => ix.statusOf(s)));
      const all = edges(type);
      for (const rule of NOTIFICATIONS[type].rules) {
        if (rule.from) expect(statuses, `${type} rule ${JSON.stringify(rule)}`).toContain(rule.from);
        if (rule.to) expect(statuses, `${type} rule ${JSON.stringify(rule)}`).toContain(rule.to);
        if (rule.event) expect(ix.events, `${type} rule ${JSON.stringify(rule)}`).toContain(rule.event);
        const matched = all.filter(([from, event, to]) => notificationRule(type, { fromStatus: from, toStatus: to, event }) === rule);
        expect(matched.length, `${type} rule ${JSON.stringify(rule)} matches no edge`).toBeGreaterThan(0);
        for (const name of rule.sends) expect(name).toMatch(/^[a-z_]+\.[a-z_]+(\.(start|end|error))?$/);
      }
    });
  }

  it('a creation sends the create start of every resource that has one; a reset of the status sends nothing', () => {
    for (const type of ['volume', 'snapshot', 'backup', 'group', 'group_snapshot'] as const) {
      const ix = MODELS[type].index;
      expect(notificationRule(type, { fromStatus: null, toStatus: ix.statusOf(ix.initial), event: CREATE_EVENT })?.sends).toEqual([
        `${type}.create.start`,
      ]);
    }
    for (const event of NOT_OPERATIONS)
      for (const type of RESOURCE_TYPES)
        for (const [from, ev, to] of edges(type).filter(([, e]) => e === event))
          expect(notificationRule(type, { fromStatus: from, toStatus: to, event: ev })).toBeUndefined();
  });

  it('an operation that starts ends: every status a .start enters is left only by its .end, its .error, or another operation (a force delete)', () => {
    const unended: string[] = [];
    for (const type of RESOURCE_TYPES) {
      const all = edges(type);
      for (const rule of NOTIFICATIONS[type].rules.filter((r) => r.sends.at(-1)!.endsWith('.start'))) {
        const action = rule.sends.at(-1)!.slice(0, -'.start'.length);
        const busy = rule.to!;
        const leaving = all.filter(([from, event, to]) => from === busy && to !== busy && !NOT_OPERATIONS.has(event));
        for (const [from, event, to] of leaving) {
          const sends = notificationRule(type, { fromStatus: from, toStatus: to, event })?.sends ?? [];
          const ends = sends.some((s) => s === `${action}.end` || s === `${action}.error`);
          const another = sends.some((s) => s.endsWith('.start'));
          // A retype that fails goes back to where it was and sends nothing, as Cinder's.
          const quietFailure = type === 'volume' && busy === 'retyping' && event === 'BACKEND_FAILED';
          if (!(ends || another || quietFailure)) unended.push(`${type}: ${from} --${event}--> ${to} leaves ${action} without an end`);
        }
      }
    }
    expect(unended).toEqual([]);
  });
});
