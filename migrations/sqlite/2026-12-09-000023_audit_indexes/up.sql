-- The console's and the admin API's audit filters (issue 21) by actor and by client, newest first;
-- retention pruning (audit_retention_days) walks audit_log_at.
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_target ON audit_log (target, id);
