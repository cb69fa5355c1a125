-- qf.status_nibble(numeric,bigint) as it is now. Earlier definitions, kept as history: sql/004 (a new database runs them first).
CREATE OR REPLACE FUNCTION qf.status_nibble(full_row numeric, recipient_index bigint) RETURNS smallint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN mod(div(full_row, power(2::numeric, 4 * (recipient_index % 64))), 16)::smallint;

COMMENT ON FUNCTION qf.status_nibble(numeric,bigint) IS 'Status of a recipient in a RecipientStatusUpdated full_row: (full_row >> 4*(index mod 64)) & 15, in exact numeric arithmetic. 0 none, 1 pending, 2 accepted, 3 rejected, 4 appealed.';
