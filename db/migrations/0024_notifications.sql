CREATE TABLE "notification_relay" (
	"name" text PRIMARY KEY NOT NULL,
	"position" bigint NOT NULL,
	"holder" text,
	"lease_until" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "state_transitions" ADD COLUMN "size" integer;