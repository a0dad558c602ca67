-- PostgreSQL only (SQLite has no notifications, and its servers cache no clients): every
-- change to a client row, however it is made (admin API, CLI, dynamic registration, or SQL
-- typed by an operator), tells every listening server at commit, on channel
-- `latchkey_clients`, which client changed (an empty payload: all of them). Servers keep
-- the clients they authenticate in memory and drop an entry when told (src/store/client_cache.rs).
CREATE FUNCTION latchkey_client_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_clients', OLD.client_id);
    RETURN NULL;
END
$$;

CREATE FUNCTION latchkey_clients_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_clients', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER clients_changed AFTER UPDATE OR DELETE ON clients
    FOR EACH ROW EXECUTE FUNCTION latchkey_client_changed();

CREATE TRIGGER clients_truncated AFTER TRUNCATE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION latchkey_clients_truncated();
