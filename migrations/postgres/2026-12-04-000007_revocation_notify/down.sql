DROP TRIGGER token_families_truncated ON token_families;
DROP TRIGGER revoked_access_tokens_truncated ON revoked_access_tokens;
DROP TRIGGER family_deleted ON token_families;
DROP TRIGGER family_revoked ON token_families;
DROP TRIGGER jti_revoked ON revoked_access_tokens;
DROP FUNCTION latchkey_revocations_truncated();
DROP FUNCTION latchkey_family_changed();
DROP FUNCTION latchkey_jti_revoked();
