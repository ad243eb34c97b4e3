CREATE TABLE "attachments" (
	"id" uuid PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"volume_id" uuid NOT NULL,
	"instance_uuid" text,
	"host_name" text,
	"mountpoint" text,
	"attach_mode" text,
	"connector" jsonb,
	"connection_info" jsonb,
	"legacy" boolean DEFAULT false NOT NULL,
	"attached_at" timestamp with time zone,
	"detached_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "leases" (
	"source_type" text NOT NULL,
	"source_id" uuid NOT NULL,
	"holder_type" text NOT NULL,
	"holder_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "leases_holder_type_holder_id_kind_source_type_source_id_pk" PRIMARY KEY("holder_type","holder_id","kind","source_type","source_id"),
	CONSTRAINT "leases_kind" CHECK (kind IN ('reader', 'dependent'))
);
--> statement-breakpoint
CREATE TABLE "resource_states" (
	"resource_type" text NOT NULL,
	"resource_id" uuid NOT NULL,
	"state" text NOT NULL,
	"previous_state" text,
	"version" integer DEFAULT 1 NOT NULL,
	"readers" integer DEFAULT 0 NOT NULL,
	"dependents" integer DEFAULT 0 NOT NULL,
	"size" integer DEFAULT 0 NOT NULL,
	"operation" jsonb,
	"multiattach" boolean DEFAULT false NOT NULL,
	"att_reserved" integer DEFAULT 0 NOT NULL,
	"att_attaching" integer DEFAULT 0 NOT NULL,
	"att_attached" integer DEFAULT 0 NOT NULL,
	"att_detaching" integer DEFAULT 0 NOT NULL,
	"att_error" integer DEFAULT 0 NOT NULL,
	"owner" text,
	"not_before" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "resource_states_resource_type_resource_id_pk" PRIMARY KEY("resource_type","resource_id"),
	CONSTRAINT "resource_states_valid_state" CHECK ((resource_type = 'volume' AND state IN ('creating.db', 'creating.scheduling', 'creating.backend', 'available', 'reserved', 'attaching', 'in-use', 'detaching', 'extending', 'reverting', 'deleting', 'error', 'error_extending', 'error_deleting', 'deleted')) OR (resource_type = 'snapshot' AND state IN ('creating', 'available', 'restoring', 'deleting', 'error', 'error_deleting', 'deleted')) OR (resource_type = 'attachment' AND state IN ('reserved', 'attaching', 'attached', 'detaching', 'error_attaching', 'error_detaching', 'detached'))),
	CONSTRAINT "resource_states_counts" CHECK ("resource_states"."readers" >= 0 AND "resource_states"."dependents" >= 0 AND "resource_states"."size" >= 0 AND "resource_states"."att_reserved" >= 0 AND "resource_states"."att_attaching" >= 0 AND "resource_states"."att_attached" >= 0 AND "resource_states"."att_detaching" >= 0 AND "resource_states"."att_error" >= 0)
);
--> statement-breakpoint
CREATE TABLE "snapshots" (
	"id" uuid PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"user_id" text,
	"volume_id" uuid NOT NULL,
	"name" text,
	"description" text,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "state_transitions" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "state_transitions_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"resource_type" text NOT NULL,
	"resource_id" uuid NOT NULL,
	"from_state" text,
	"event" text NOT NULL,
	"to_state" text NOT NULL,
	"version" integer NOT NULL,
	"actor" text NOT NULL,
	"request_id" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "volumes" (
	"id" uuid PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"user_id" text,
	"name" text,
	"description" text,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"snapshot_id" uuid,
	"source_volid" uuid,
	"availability_zone" text DEFAULT 'nova' NOT NULL,
	"volume_type" text DEFAULT '__DEFAULT__' NOT NULL,
	"bootable" boolean DEFAULT false NOT NULL,
	"multiattach" boolean DEFAULT false NOT NULL,
	"readonly" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "waiters" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "waiters_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"resource_type" text NOT NULL,
	"resource_id" uuid NOT NULL,
	"deadline" timestamp with time zone NOT NULL,
	"alive_until" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "workers" (
	"id" text PRIMARY KEY NOT NULL,
	"host" text NOT NULL,
	"pid" integer NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"heartbeat_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "attachments" ADD CONSTRAINT "attachments_volume_id_volumes_id_fk" FOREIGN KEY ("volume_id") REFERENCES "public"."volumes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "snapshots" ADD CONSTRAINT "snapshots_volume_id_volumes_id_fk" FOREIGN KEY ("volume_id") REFERENCES "public"."volumes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "attachments_volume" ON "attachments" USING btree ("volume_id");--> statement-breakpoint
CREATE INDEX "attachments_project_created" ON "attachments" USING btree ("project_id","created_at","id");--> statement-breakpoint
CREATE INDEX "leases_source" ON "leases" USING btree ("source_type","source_id");--> statement-breakpoint
CREATE INDEX "resource_states_pending" ON "resource_states" USING btree ("updated_at") WHERE owner IS NULL AND ((resource_type = 'volume' AND (state IN ('creating.db', 'creating.scheduling', 'creating.backend', 'extending', 'reverting') OR (state = 'deleting' AND (dependents = 0)))) OR (resource_type = 'snapshot' AND (state IN ('creating', 'deleting'))));--> statement-breakpoint
CREATE INDEX "resource_states_owned" ON "resource_states" USING btree ("owner") WHERE owner IS NOT NULL;--> statement-breakpoint
CREATE INDEX "snapshots_project_created" ON "snapshots" USING btree ("project_id","created_at","id");--> statement-breakpoint
CREATE INDEX "snapshots_volume" ON "snapshots" USING btree ("volume_id");--> statement-breakpoint
CREATE UNIQUE INDEX "state_transitions_resource_version" ON "state_transitions" USING btree ("resource_type","resource_id","version");--> statement-breakpoint
CREATE INDEX "volumes_project_created" ON "volumes" USING btree ("project_id","created_at","id");--> statement-breakpoint
CREATE INDEX "waiters_resource" ON "waiters" USING btree ("resource_type","resource_id","id");