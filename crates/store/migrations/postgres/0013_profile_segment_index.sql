-- The SQLite counterpart makes `profiles_tier` cover the profile figures segment conditions
-- name. PostgreSQL keeps its narrow index: every event updates its person's profile, and with
-- those figures in an index no profile update could be a HOT update, so every event would
-- write a new entry in every profile index.
SELECT 1;
