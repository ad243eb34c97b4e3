CREATE TABLE "qos_specs" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"consumer" text DEFAULT 'back-end' NOT NULL,
	"specs" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone,
	CONSTRAINT "qos_specs_consumer" CHECK (consumer IN ('front-end', 'back-end', 'both'))
);
--> statement-breakpoint
ALTER TABLE "volume_types" ADD COLUMN "qos_specs_id" uuid;--> statement-breakpoint
CREATE UNIQUE INDEX "qos_specs_name" ON "qos_specs" USING btree ("name");--> statement-breakpoint
ALTER TABLE "volume_types" ADD CONSTRAINT "volume_types_qos_specs_id_qos_specs_id_fk" FOREIGN KEY ("qos_specs_id") REFERENCES "public"."qos_specs"("id") ON DELETE set null ON UPDATE no action;