-- PostgreSQL only, as revocation_notify: servers keep "this access token is live" answers in
-- memory, and "live" includes "its user is enabled" (RFC 7662 §2.2: active means usable now).
-- Disabling, re-enabling or deleting a user tells every listening server at commit to drop
-- them all (empty payload on `latchkey_revocations`; user state changes are rare).
CREATE FUNCTION latchkey_user_state_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_revocations', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER user_disabled AFTER UPDATE ON users
    FOR EACH ROW WHEN (OLD.disabled IS DISTINCT FROM NEW.disabled)
    EXECUTE FUNCTION latchkey_user_state_changed();

CREATE TRIGGER user_deleted AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION latchkey_user_state_changed();
