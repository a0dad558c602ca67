DROP TRIGGER clients_truncated ON clients;
DROP TRIGGER clients_changed ON clients;
DROP FUNCTION latchkey_clients_truncated();
DROP FUNCTION latchkey_client_changed();
