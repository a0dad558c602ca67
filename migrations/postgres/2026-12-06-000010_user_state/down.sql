DROP TRIGGER user_deleted ON users;
DROP TRIGGER user_disabled ON users;
DROP FUNCTION latchkey_user_state_changed();
