-- PostgreSQL only, as client_notify: every revocation tells every listening server at commit,
-- on channel `latchkey_revocations`: 'j' || jti when an access token is revoked by its jti,
-- 'f' || family_id when a refresh family's revocation changes or the family is deleted, and an
-- empty payload when either table is truncated. Servers keep "this access token is live"
-- answers in memory and drop them when told (src/store/client_cache.rs). Deleting a
-- revocation record (they are pruned once the token has expired) needs no notification: it
-- can only make a token live again.
CREATE FUNCTION latchkey_jti_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_revocations', 'j' || NEW.jti);
    RETURN NULL;
END
$$;

CREATE FUNCTION latchkey_family_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_revocations', 'f' || OLD.family_id);
    RETURN NULL;
END
$$;

CREATE FUNCTION latchkey_revocations_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_revocations', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER jti_revoked AFTER INSERT OR UPDATE ON revoked_access_tokens
    FOR EACH ROW EXECUTE FUNCTION latchkey_jti_revoked();

CREATE TRIGGER family_revoked AFTER UPDATE ON token_families
    FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
    EXECUTE FUNCTION latchkey_family_changed();

CREATE TRIGGER family_deleted AFTER DELETE ON token_families
    FOR EACH ROW EXECUTE FUNCTION latchkey_family_changed();

CREATE TRIGGER revoked_access_tokens_truncated AFTER TRUNCATE ON revoked_access_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION latchkey_revocations_truncated();

CREATE TRIGGER token_families_truncated AFTER TRUNCATE ON token_families
    FOR EACH STATEMENT EXECUTE FUNCTION latchkey_revocations_truncated();
