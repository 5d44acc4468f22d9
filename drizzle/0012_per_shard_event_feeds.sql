CREATE TABLE "event_feeds" (
	"bucket" integer PRIMARY KEY NOT NULL,
	"position" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_cursors" (
	"bucket" integer NOT NULL,
	"endpoint_id" uuid NOT NULL,
	"position" bigint NOT NULL,
	CONSTRAINT "webhook_cursors_bucket_endpoint_id_pk" PRIMARY KEY("bucket","endpoint_id")
);
--> statement-breakpoint
ALTER TABLE "webhook_cursors" ADD CONSTRAINT "webhook_cursors_endpoint_id_webhook_endpoints_id_fk" FOREIGN KEY ("endpoint_id") REFERENCES "public"."webhook_endpoints"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
-- Each shard's feed is placed by src/events/place-events.ts, in a transaction on that shard:
-- one placing call across every shard committed shard by shard, and a reader could see a later
-- position before an earlier one.
DROP FUNCTION holdfast_position_events(int);
