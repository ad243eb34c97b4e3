/** Types of scripts/postgres-guards.mjs. */
export declare const MARK: string;
export declare const GUARDS: readonly (readonly [file: string, anchor: string, guard: string])[];
