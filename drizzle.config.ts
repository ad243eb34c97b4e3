import { defineConfig } from 'drizzle-kit';

// `npm run db:generate` writes a new migration when db/schema.ts (or a
// machine's state list, which the schema's CHECK is built from) changes.
export default defineConfig({
  dialect: 'postgresql',
  schema: './db/schema.ts',
  out: './db/migrations',
});
