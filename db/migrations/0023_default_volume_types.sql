CREATE TABLE "default_volume_types" (
	"project_id" text PRIMARY KEY NOT NULL,
	"volume_type_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "default_volume_types" ADD CONSTRAINT "default_volume_types_volume_type_id_volume_types_id_fk" FOREIGN KEY ("volume_type_id") REFERENCES "public"."volume_types"("id") ON DELETE no action ON UPDATE no action;