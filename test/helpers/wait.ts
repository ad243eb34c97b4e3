/**
 * Waiting in tests: on a condition the test can observe, never on a fixed
 * delay. A sleep that stands for "long enough" is a flake on a slower or
 * busier machine (issue 18); lint (eslint.config.js) refuses a `setTimeout`
 * of 100 ms or more in test/, with a few justified exceptions marked there.
 */

/** Poll `check` until it returns a value that is not undefined, or fail after `ms` naming `what`. */
export async function eventually<T>(check: () => Promise<T | undefined>, ms = 10_000, what = 'condition'): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until)
      throw new Error(
        `timed out waiting for ${what}${last ? `: ${typeof last === 'string' ? last : last instanceof Error ? last.message : JSON.stringify(last)}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `eventually` for a yes/no condition. */
export async function until(condition: () => Promise<boolean> | boolean, ms = 10_000, what = 'condition'): Promise<void> {
  await eventually(async () => ((await condition()) ? true : undefined), ms, what);
}
