-- An event never changes but to get its feed position, once; events are never deleted.
CREATE OR REPLACE FUNCTION holdfast_event_placed_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'holdfast: events are never deleted' USING ERRCODE = 'restrict_violation';
  END IF;
  IF OLD.position IS NOT NULL OR NEW.position IS NULL
     OR to_jsonb(NEW) - 'position' <> to_jsonb(OLD) - 'position' THEN
    RAISE EXCEPTION 'holdfast: event % cannot change', OLD.id USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END;
$$;
