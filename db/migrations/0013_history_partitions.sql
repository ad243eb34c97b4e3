-- Hand-written (drizzle cannot say PARTITION BY): the history becomes a table
-- partitioned by month on "at", so that purging a month is dropping a
-- partition (db/retention.ts makes the partitions ahead and drops old ones).
ALTER TABLE "state_transitions" RENAME TO "state_transitions_unpartitioned";--> statement-breakpoint
ALTER INDEX "state_transitions_resource_version" RENAME TO "state_transitions_unpartitioned_resource_version";--> statement-breakpoint
ALTER INDEX "state_transitions_request" RENAME TO "state_transitions_unpartitioned_request";--> statement-breakpoint
CREATE TABLE "state_transitions" (
	"id" bigint GENERATED ALWAYS AS IDENTITY,
	"resource_type" text NOT NULL,
	"resource_id" uuid NOT NULL,
	"from_state" text,
	"event" text NOT NULL,
	"to_state" text NOT NULL,
	"version" integer NOT NULL,
	"actor" text NOT NULL,
	"request_id" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "state_transitions_id_at_pk" PRIMARY KEY("id","at")
) PARTITION BY RANGE ("at");--> statement-breakpoint
CREATE INDEX "state_transitions_resource_version" ON "state_transitions" USING btree ("resource_type","resource_id","version");--> statement-breakpoint
CREATE INDEX "state_transitions_request" ON "state_transitions" USING btree ("request_id") WHERE request_id IS NOT NULL;--> statement-breakpoint
-- Anything outside the monthly partitions (a clock far off, or months no node made ahead) lands here.
CREATE TABLE "state_transitions_default" PARTITION OF "state_transitions" DEFAULT;--> statement-breakpoint
-- One partition per month (UTC) from the oldest row to two months ahead.
DO $$
DECLARE
  m timestamptz := date_trunc('month', LEAST(COALESCE((SELECT min("at") FROM "state_transitions_unpartitioned"), now()), now()) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  stop timestamptz := (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months') AT TIME ZONE 'UTC';
BEGIN
  WHILE m < stop LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF "state_transitions" FOR VALUES FROM (%L) TO (%L)',
      'state_transitions_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM'), m, ((m AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC');
    m := ((m AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
  END LOOP;
END $$;--> statement-breakpoint
INSERT INTO "state_transitions" ("id", "resource_type", "resource_id", "from_state", "event", "to_state", "version", "actor", "request_id", "at")
OVERRIDING SYSTEM VALUE
SELECT "id", "resource_type", "resource_id", "from_state", "event", "to_state", "version", "actor", "request_id", "at" FROM "state_transitions_unpartitioned";--> statement-breakpoint
SELECT setval(pg_get_serial_sequence('"state_transitions"', 'id'), COALESCE((SELECT max("id") FROM "state_transitions"), 0) + 1, false);--> statement-breakpoint
DROP TABLE "state_transitions_unpartitioned";
