CREATE TABLE "services" (
	"host" text NOT NULL,
	"binary" text NOT NULL,
	"disabled" boolean DEFAULT false NOT NULL,
	"disabled_reason" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "services_host_binary_pk" PRIMARY KEY("host","binary")
);
