//! The secret vault: upstream credentials, client secrets and (later) OAuth tokens, encrypted
//! with AES-256-GCM under the instance's [`MasterKey`] and stored in a table beside the event
//! log, never in it.
//!
//! [`Vault`] does all the cryptography; a [`VaultStore`] only keeps bytes. Two stores exist:
//! [`sqlite::SqliteVaultStore`] (the same database file as the SQLite event log) and
//! [`postgres::PostgresVaultStore`] (the same database as the PostgreSQL event log).
//!
//! Every secret is named by a [`SecretRef`] (owner, kind, version). The name is bound to the
//! ciphertext as associated data, so a ciphertext copied to another owner, kind or version does
//! not decrypt. Versions of one (owner, kind) start at 1 and grow by one per [`Vault::put`]; the
//! event log records only the version (`ServerCredentialSet`), never the secret.
//!
//! When it opens, the vault stores (the first time) or checks a key-check record, so that a
//! wrong master key is refused at start-up rather than at the first secret read.

mod cipher;
mod key;
pub mod postgres;
pub mod sqlite;

#[cfg(test)]
mod conformance;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::domain::ids::ServerId;
use crate::domain::server::CredentialKind;

use cipher::{Cipher, Sealed};
pub use key::{KeySource, MASTER_KEY_ENV, MASTER_KEY_FILE, MasterKey};

/// The longest owner or kind accepted, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// The largest secret accepted, in bytes.
pub const MAX_SECRET_LEN: usize = 64 * 1024;
/// Owners starting with this prefix belong to the vault itself and cannot be written through
/// the public operations.
pub const RESERVED_OWNER_PREFIX: &str = "portico:";

/// How many times [`Vault::put`] retries when a concurrent writer took the version it chose.
const PUT_ATTEMPTS: u32 = 32;

// INVARIANT: the key check is always version 1 of this owner and kind, and its plaintext never
// changes; a vault created by any Portico version can be checked by any later one.
const KEY_CHECK_OWNER: &str = "portico:vault";
const KEY_CHECK_KIND: &str = "key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"portico vault key check v1";

/// The name of one stored secret: the version `version` of the secret `kind` of `owner`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    /// Who the secret belongs to, e.g. `server:my-server` (see [`server_owner`]).
    pub owner: String,
    /// What the secret is, e.g. `auth_credentials`, `client_secret`, `oauth_token`.
    pub kind: String,
    /// Starts at 1 for each (owner, kind).
    pub version: u32,
}

impl SecretRef {
    /// Names version `version` of the secret `kind` of `owner`.
    pub fn new(owner: impl Into<String>, kind: impl Into<String>, version: u32) -> Self {
        SecretRef { owner: owner.into(), kind: kind.into(), version }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "secret `{}` v{} of `{}`", self.kind, self.version, self.owner)
    }
}

/// The owner name of a server's credentials: `server:<server_id>`.
pub fn server_owner(server_id: &ServerId) -> String {
    format!("server:{}", server_id.as_str())
}

/// The kind name of a server credential, as the API spells the field.
pub fn credential_kind(credential: CredentialKind) -> &'static str {
    match credential {
        CredentialKind::AuthCredentials => "auth_credentials",
        CredentialKind::ClientSecret => "client_secret",
    }
}

/// A secret in plain text. Its memory is zeroed when dropped, and it never prints itself.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps `secret`; the `String` is moved, not copied.
    pub fn new(secret: String) -> Self {
        SecretString(secret)
    }

    /// The secret itself. Keep the borrow short and never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(secret: String) -> Self {
        SecretString(secret)
    }
}

impl From<&str> for SecretString {
    fn from(secret: &str) -> Self {
        SecretString(secret.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Everything that can go wrong in the vault. No variant carries a secret or key bytes.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Authentication of the ciphertext failed: it was altered, copied from another name, or
    /// encrypted under another master key.
    #[error(
        "secret `{kind}` v{version} of `{owner}` cannot be decrypted: the ciphertext was altered \
         or the master key is wrong"
    )]
    Decrypt { owner: String, kind: String, version: u32 },
    /// No secret has this name.
    #[error("secret `{kind}` v{version} of `{owner}` does not exist")]
    NotFound { owner: String, kind: String, version: u32 },
    /// The key-check record does not decrypt under the master key in use.
    #[error(
        "the master key does not match the one this vault was created with (source: {key_source})"
    )]
    WrongMasterKey { key_source: KeySource },
    /// A master key given as text (configuration or environment) cannot be used.
    #[error("invalid master key from {origin}: {problem}")]
    InvalidKey { origin: String, problem: String },
    /// The master key file may be read or written by other users.
    #[error(
        "master key file `{}` is accessible by group or others (mode {mode:03o}): run `chmod 600 {}`",
        .path.display(), .path.display()
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    /// The master key file cannot be read or written.
    #[error("cannot {action} master key file `{}`: {source}", .path.display())]
    KeyFile {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// An owner or kind is empty, too long, has control characters or is reserved.
    #[error("invalid secret {field} `{value}`: {problem}")]
    InvalidName { field: &'static str, value: String, problem: String },
    /// A secret is larger than [`MAX_SECRET_LEN`].
    #[error("secret is {len} bytes; at most {max} are allowed")]
    TooLarge { len: usize, max: usize },
    /// The version counter of an (owner, kind) reached `u32::MAX`.
    #[error("secret `{kind}` of `{owner}` has no version left")]
    VersionsExhausted { owner: String, kind: String },
    /// Concurrent writers kept taking the version a put chose.
    #[error(
        "could not store a new version of secret `{kind}` of `{owner}` after {attempts} attempts: \
         too many concurrent writers"
    )]
    Contention { owner: String, kind: String, attempts: u32 },
    /// `put_at` found the version already stored (a concurrent writer took it).
    #[error("secret `{kind}` v{version} of `{owner}` already exists")]
    VersionTaken { owner: String, kind: String, version: u32 },
    /// A stored record has an impossible shape (wrong nonce length, version out of range).
    #[error("stored secret `{kind}` v{version} of `{owner}` is malformed: {problem}")]
    Corrupt { owner: String, kind: String, version: i64, problem: String },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    /// Encryption itself failed (it only can for inputs far beyond [`MAX_SECRET_LEN`]).
    #[error("secret `{kind}` v{version} of `{owner}` cannot be encrypted")]
    Encrypt { owner: String, kind: String, version: u32 },
    /// The database failed.
    #[error("vault storage error: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl VaultError {
    pub(crate) fn storage(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        VaultError::Storage(Box::new(e))
    }
}

/// One stored row, as a [`VaultStore`] keeps it: the name, the 96-bit nonce and the ciphertext
/// with its 128-bit tag appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    /// The name the ciphertext is bound to.
    pub secret: SecretRef,
    /// The random AES-GCM nonce used for this ciphertext.
    pub nonce: [u8; 12],
    /// The AES-GCM ciphertext followed by its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl StoredSecret {
    /// Builds a record from a database row, checking the nonce's length.
    pub fn from_row(
        secret: &SecretRef,
        nonce: &[u8],
        ciphertext: Vec<u8>,
    ) -> Result<StoredSecret, VaultError> {
        let nonce = <[u8; 12]>::try_from(nonce).map_err(|_| {
            corrupt(secret, &format!("the nonce is {} bytes instead of 12", nonce.len()))
        })?;
        Ok(StoredSecret { secret: secret.clone(), nonce, ciphertext })
    }
}

/// Converts a version read from a database, refusing values no put could have written.
pub(crate) fn stored_version(owner: &str, kind: &str, version: i64) -> Result<u32, VaultError> {
    u32::try_from(version).map_err(|_| VaultError::Corrupt {
        owner: owner.to_owned(),
        kind: kind.to_owned(),
        version,
        problem: "the version is out of range".into(),
    })
}

/// Where the vault keeps its rows. Implementations store and return bytes; they never see a
/// key or a plaintext.
#[async_trait]
pub trait VaultStore: Send + Sync + fmt::Debug {
    /// The highest stored version of (`owner`, `kind`), if any.
    async fn max_version(&self, owner: &str, kind: &str) -> Result<Option<u32>, VaultError>;

    /// Inserts `record` unless its (owner, kind, version) already exists. Returns whether it
    /// was inserted; an existing row is left unchanged.
    async fn insert(&self, record: StoredSecret) -> Result<bool, VaultError>;

    /// The row named `secret`, if it exists.
    async fn fetch(&self, secret: &SecretRef) -> Result<Option<StoredSecret>, VaultError>;

    /// Deletes the row named `secret`. Returns whether it existed.
    async fn delete(&self, secret: &SecretRef) -> Result<bool, VaultError>;

    /// Deletes every row of `owner`. Returns how many there were.
    async fn delete_owner(&self, owner: &str) -> Result<u64, VaultError>;
}

/// The secret vault: encrypts under the master key and keeps the result in a [`VaultStore`].
pub struct Vault {
    cipher: Cipher,
    key_source: KeySource,
    store: Arc<dyn VaultStore>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("key_source", &self.key_source)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Opens the vault kept in `store` with `key`, which came from `key_source`.
    ///
    /// The first open of a store records a key check; every later open verifies it and fails
    /// with [`VaultError::WrongMasterKey`] if `key` is not the key the vault was created with.
    pub async fn open(
        key: MasterKey,
        key_source: KeySource,
        store: Arc<dyn VaultStore>,
    ) -> Result<Vault, VaultError> {
        let vault = Vault { cipher: Cipher::new(&key), key_source, store };
        drop(key);
        vault.check_key().await?;
        Ok(vault)
    }

    /// Where the master key in use came from.
    pub fn key_source(&self) -> &KeySource {
        &self.key_source
    }

    /// Stores `plaintext` as exactly `version` of `(owner, kind)`, for callers that number
    /// versions themselves (the server aggregate does, across removal and re-creation). Fails
    /// with [`VaultError::VersionTaken`] if that version exists; nothing is overwritten.
    pub async fn put_at(
        &self,
        owner: &str,
        kind: &str,
        version: u32,
        plaintext: &SecretString,
    ) -> Result<SecretRef, VaultError> {
        validate_name("owner", owner, true)?;
        validate_name("kind", kind, false)?;
        if plaintext.len() > MAX_SECRET_LEN {
            return Err(VaultError::TooLarge { len: plaintext.len(), max: MAX_SECRET_LEN });
        }
        let secret = SecretRef::new(owner, kind, version);
        let record = self.seal(secret.clone(), plaintext.expose_secret().as_bytes())?;
        if self.store.insert(record).await? {
            Ok(secret)
        } else {
            Err(VaultError::VersionTaken {
                owner: owner.to_owned(),
                kind: kind.to_owned(),
                version,
            })
        }
    }

    /// Encrypts `plaintext` as the next version of the secret `kind` of `owner` and returns
    /// its name. Versions start at 1; concurrent puts get distinct versions.
    pub async fn put(
        &self,
        owner: &str,
        kind: &str,
        plaintext: &SecretString,
    ) -> Result<SecretRef, VaultError> {
        validate_name("owner", owner, true)?;
        validate_name("kind", kind, false)?;
        if plaintext.len() > MAX_SECRET_LEN {
            return Err(VaultError::TooLarge { len: plaintext.len(), max: MAX_SECRET_LEN });
        }
        for _ in 0..PUT_ATTEMPTS {
            let current = self.store.max_version(owner, kind).await?.unwrap_or(0);
            let version = current.checked_add(1).ok_or_else(|| VaultError::VersionsExhausted {
                owner: owner.to_owned(),
                kind: kind.to_owned(),
            })?;
            let secret = SecretRef::new(owner, kind, version);
            let record = self.seal(secret.clone(), plaintext.expose_secret().as_bytes())?;
            // INVARIANT: the store refuses to overwrite an existing version, so two racing puts
            // that chose the same version cannot both succeed; the loser tries the next one.
            if self.store.insert(record).await? {
                return Ok(secret);
            }
        }
        Err(VaultError::Contention {
            owner: owner.to_owned(),
            kind: kind.to_owned(),
            attempts: PUT_ATTEMPTS,
        })
    }

    /// Decrypts the secret named `secret`.
    pub async fn get(&self, secret: &SecretRef) -> Result<SecretString, VaultError> {
        let record = self.store.fetch(secret).await?.ok_or_else(|| VaultError::NotFound {
            owner: secret.owner.clone(),
            kind: secret.kind.clone(),
            version: secret.version,
        })?;
        let bytes = self.open_record(&record)?;
        match String::from_utf8(bytes) {
            Ok(text) => Ok(SecretString::new(text)),
            Err(e) => {
                let mut bytes = e.into_bytes();
                bytes.zeroize();
                Err(corrupt(secret, "the plaintext is not UTF-8"))
            }
        }
    }

    /// The name of the newest version of the secret `kind` of `owner`, if there is one.
    pub async fn latest(&self, owner: &str, kind: &str) -> Result<Option<SecretRef>, VaultError> {
        let version = self.store.max_version(owner, kind).await?;
        Ok(version.map(|version| SecretRef::new(owner, kind, version)))
    }

    /// Deletes one version, e.g. to roll back a put whose event could not be appended.
    /// Returns whether it existed.
    pub async fn delete(&self, secret: &SecretRef) -> Result<bool, VaultError> {
        validate_name("owner", &secret.owner, true)?;
        self.store.delete(secret).await
    }

    /// Deletes every version of every secret of `owner`, e.g. when a server is deleted.
    /// Returns how many versions there were.
    pub async fn delete_owner(&self, owner: &str) -> Result<u64, VaultError> {
        validate_name("owner", owner, true)?;
        self.store.delete_owner(owner).await
    }

    fn seal(&self, secret: SecretRef, plaintext: &[u8]) -> Result<StoredSecret, VaultError> {
        let Sealed { nonce, ciphertext } = self.cipher.seal(&secret, plaintext)?;
        Ok(StoredSecret { secret, nonce, ciphertext })
    }

    fn open_record(&self, record: &StoredSecret) -> Result<Vec<u8>, VaultError> {
        self.cipher.open(&record.secret, &record.nonce, &record.ciphertext)
    }

    async fn check_key(&self) -> Result<(), VaultError> {
        let name = SecretRef::new(KEY_CHECK_OWNER, KEY_CHECK_KIND, 1);
        let record = match self.store.fetch(&name).await? {
            Some(record) => record,
            None => {
                let record = self.seal(name.clone(), KEY_CHECK_PLAINTEXT)?;
                if self.store.insert(record.clone()).await? {
                    tracing::info!(key_source = %self.key_source, "vault key check recorded");
                    return Ok(());
                }
                // Another instance created the vault at the same moment: check its record.
                self.store.fetch(&name).await?.ok_or_else(|| {
                    corrupt(&name, "the key check vanished while the vault was opening")
                })?
            }
        };
        match self.open_record(&record) {
            Ok(plaintext) if plaintext == KEY_CHECK_PLAINTEXT => Ok(()),
            Ok(_) => Err(corrupt(&name, "the key check has unexpected contents")),
            Err(VaultError::Decrypt { .. }) => {
                Err(VaultError::WrongMasterKey { key_source: self.key_source.clone() })
            }
            Err(e) => Err(e),
        }
    }
}

fn corrupt(secret: &SecretRef, problem: &str) -> VaultError {
    VaultError::Corrupt {
        owner: secret.owner.clone(),
        kind: secret.kind.clone(),
        version: i64::from(secret.version),
        problem: problem.to_owned(),
    }
}

/// Checks an owner or kind given to a public operation.
fn validate_name(field: &'static str, value: &str, is_owner: bool) -> Result<(), VaultError> {
    let invalid = |problem: String| VaultError::InvalidName {
        field,
        value: value.chars().take(64).collect(),
        problem,
    };
    if value.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(invalid(format!("is longer than {MAX_NAME_LEN} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters".into()));
    }
    if is_owner && value.starts_with(RESERVED_OWNER_PREFIX) {
        return Err(invalid(format!(
            "owners starting with `{RESERVED_OWNER_PREFIX}` are reserved"
        )));
    }
    Ok(())
}

/// Seconds since the Unix epoch, for the `created_at` column.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_debug_is_redacted() {
        let secret = SecretString::from("hunter2-very-secret");
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert_eq!(shown, "[redacted] Some([redacted])");
        assert_eq!(secret.expose_secret(), "hunter2-very-secret");
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("owner", "server:a", true).is_ok());
        assert!(validate_name("owner", "", true).is_err());
        assert!(validate_name("owner", &"x".repeat(MAX_NAME_LEN + 1), true).is_err());
        assert!(validate_name("kind", "a\nb", false).is_err());
        let err = validate_name("owner", "portico:vault", true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid secret owner `portico:vault`: owners starting with `portico:` are reserved"
        );
    }

    #[test]
    fn server_names() {
        let id = ServerId::parse("my-server").unwrap();
        assert_eq!(server_owner(&id), "server:my-server");
        assert_eq!(credential_kind(CredentialKind::AuthCredentials), "auth_credentials");
        assert_eq!(credential_kind(CredentialKind::ClientSecret), "client_secret");
    }

    #[test]
    fn decrypt_error_message() {
        let err = VaultError::Decrypt {
            owner: "server:x".into(),
            kind: "auth_credentials".into(),
            version: 3,
        };
        assert_eq!(
            err.to_string(),
            "secret `auth_credentials` v3 of `server:x` cannot be decrypted: the ciphertext was \
             altered or the master key is wrong"
        );
    }
}
