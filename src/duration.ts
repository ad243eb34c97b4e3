/** Durations as people write them on the command line and in the environment. */
const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `250ms`, `5s`, `2m`, `12h`, `30d` (a bare number is seconds) → ms; `what` names the input in the error. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new Error(`${what}: '${text}' is not a duration such as 250ms, 5s, 2m, 12h or 30d`);
  return Number(m[1]) * UNIT[m[2] ?? 's']!;
}
