CREATE TABLE "messages" (
	"id" uuid PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"request_id" text NOT NULL,
	"resource_type" text NOT NULL,
	"resource_uuid" uuid,
	"event_id" text NOT NULL,
	"message_level" text DEFAULT 'ERROR' NOT NULL,
	"user_message" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "messages_project_created" ON "messages" USING btree ("project_id","created_at","id");