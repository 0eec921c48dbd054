//! The login passwords of the database roles the migrations create (`bucket_sink`,
//! `bucket_reader`, `bucket_purger`): the migrations fix none, the operator sets them from
//! Secrets through `bucket sink migrate --*-role-password` (docs/deploying.md, "Database roles").

use super::StoreError;
use super::pg::Store;

impl Store {
    /// Sets the login password of `role` (one the migrations created) without sending it in
    /// clear: the statement carries only its SCRAM-SHA-256 verifier, as `psql`'s `\password`
    /// does, so the password reaches neither the server's logs nor `pg_stat_activity`. Needs
    /// the owner's CREATEROLE.
    pub async fn set_role_password(&self, role: &str, password: &str) -> Result<(), StoreError> {
        if password.is_empty() {
            return Err(StoreError::Config(format!(
                "empty password for role {role}"
            )));
        }
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        // The verifier is base64, digits and `SCRAM-SHA-256$:`: nothing to escape in a literal.
        let sql = format!(
            "ALTER ROLE {} PASSWORD '{verifier}'",
            postgres_protocol::escape::escape_identifier(role)
        );
        self.client.batch_execute(&sql).await?;
        Ok(())
    }
}
