DROP INDEX audit_log_target;
DROP INDEX audit_log_actor;
